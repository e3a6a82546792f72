"""Supervisor (seed 003): delegates to researcher, writer and reviewer subgraphs until the work is done.

    START → supervisor ─┬→ researcher ─┐
               ↑        ├→ writer ─────┤   (each worker: brief → agent ⇄ tools → report)
               └────────┼→ reviewer ───┘
                        └→ finish → END

Every run ends: a typed decision per round, a round limit, and loop detection in ``nodes.team.supervisor``;
``finish_reason`` says which ended it, and the writer's article can be returned verbatim.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from graphs.workers import build_worker
from nodes.models import TRANSIENT_RETRY, ModelProvider, settings_models
from nodes.team.supervisor import finish, make_supervisor
from state.common import RunContext
from state.supervisor import SupervisorInput, SupervisorOutput, SupervisorState
from state.team import WORKERS


def build_graph(
    models: ModelProvider = settings_models, checkpointer: Checkpointer = None
) -> CompiledStateGraph[SupervisorState, RunContext, SupervisorInput, SupervisorOutput]:
    builder = StateGraph(
        SupervisorState, context_schema=RunContext, input_schema=SupervisorInput, output_schema=SupervisorOutput
    )
    builder.add_node("supervisor", make_supervisor(models), retry_policy=TRANSIENT_RETRY)
    builder.add_node("finish", finish)
    builder.add_edge(START, "supervisor")
    for worker in WORKERS:
        builder.add_node(worker, build_worker(worker, models))
        builder.add_edge(worker, "supervisor")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name="supervisor")


graph = build_graph()
