"""Graphs for the server benchmarks: a chain of fake-model nodes, one node long or ten.

Each node is a real model call through :func:`nodes.models.call_model` on the configured model
(``fake:echo`` in the benchmarks), so a run does the same work in-process, in Loom and in
``langgraph dev``: one checkpoint and one model call per node. ``one_node.py`` and ``ten_nodes.py``
expose them as modules with ``build_graph`` and ``graph``, which both servers load from
``langgraph.bench.json``.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.messages import AnyMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer
from typing_extensions import TypedDict

from nodes.models import ModelProvider, call_model, settings_models
from state.common import UsageRecord


class ChainState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    usage: Annotated[list[UsageRecord], operator.add]


def model_step(name: str, models: ModelProvider) -> Any:
    async def step(state: ChainState, config: RunnableConfig) -> dict[str, Any]:
        history: list[BaseMessage] = list(state["messages"])
        reply, usage = await call_model(models("bench"), history, node=name, config=config)
        return {"messages": [reply], "usage": [usage]}

    return step


def build_chain(
    size: int, models: ModelProvider = settings_models, checkpointer: Checkpointer = None
) -> CompiledStateGraph[ChainState, None, ChainState, ChainState]:
    """START → step_1 → … → step_{size} → END."""
    builder = StateGraph(ChainState)
    previous = START
    for index in range(1, size + 1):
        builder.add_node(f"step_{index}", model_step(f"step_{index}", models))
        builder.add_edge(previous, f"step_{index}")
        previous = f"step_{index}"
    builder.set_finish_point(previous)
    return builder.compile(checkpointer=checkpointer, name=f"chain_{size}")
