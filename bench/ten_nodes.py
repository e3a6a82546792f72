"""The ten-node benchmark graph (see ``bench_graphs``): per-step costs (checkpoints, events) add up."""

from __future__ import annotations

from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from bench.bench_graphs import ChainState, build_chain


def build_graph(checkpointer: Checkpointer = None) -> CompiledStateGraph[ChainState, None, ChainState, ChainState]:
    return build_chain(10, checkpointer=checkpointer)


graph = build_graph()
