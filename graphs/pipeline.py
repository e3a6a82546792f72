"""Pipeline (seed 003): a fixed research → write → review sequence with one conditional revise loop.

    START → intake → research → write → review ─┬→ revise ─→ review
                                                └→ publish → END

research, write and revise are the worker subgraphs of ``graphs.workers``; review scores the draft
against a rubric of binary criteria (``nodes.team.pipeline``) and loops while it is below the threshold,
up to ``max_revisions``. For code, where the feedback comes from running it, see ``code_reflection``.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from graphs.workers import build_worker
from nodes.models import TRANSIENT_RETRY, ModelProvider, settings_models
from nodes.team.pipeline import intake, make_review, publish
from state.common import RunContext
from state.pipeline import PipelineInput, PipelineOutput, PipelineState


def build_graph(
    models: ModelProvider = settings_models, checkpointer: Checkpointer = None
) -> CompiledStateGraph[PipelineState, RunContext, PipelineInput, PipelineOutput]:
    builder = StateGraph(
        PipelineState, context_schema=RunContext, input_schema=PipelineInput, output_schema=PipelineOutput
    )
    builder.add_node("intake", intake)
    builder.add_node("research", build_worker("researcher", models))
    builder.add_node("write", build_worker("writer", models))
    builder.add_node("review", make_review(models), retry_policy=TRANSIENT_RETRY)
    builder.add_node("revise", build_worker("writer", models))
    builder.add_node("publish", publish)
    builder.add_edge(START, "intake")
    builder.add_edge("intake", "research")
    builder.add_edge("research", "write")
    builder.add_edge("write", "review")
    builder.add_edge("revise", "review")
    builder.add_edge("publish", END)
    return builder.compile(checkpointer=checkpointer, name="pipeline")


graph = build_graph()
