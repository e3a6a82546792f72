"""The graphs Loom serves, read from ``langgraph.json`` so Studio, the CLI and the server agree."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from loom.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    module: str
    attribute: str

    def build(
        self, checkpointer: Checkpointer = None, store: BaseStore | None = None, **kwargs: Any
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """A fresh compiled graph bound to ``checkpointer`` and ``store``; the module's ``graph`` stays untouched.

        The target names either a compiled graph (its module's ``build_graph`` makes the copy) or a
        factory taking ``checkpointer``.
        """
        module = importlib.import_module(self.module)
        target = getattr(module, self.attribute)
        factory = module.build_graph if isinstance(target, CompiledStateGraph) else target
        graph: CompiledStateGraph[Any, Any, Any, Any] = factory(checkpointer=checkpointer, **kwargs)
        return graph.copy(update={"store": store}) if store is not None else graph


def graph_specs() -> dict[str, GraphSpec]:
    return _read_specs(get_settings().graphs_config or PROJECT_ROOT / "langgraph.json")


@lru_cache(maxsize=8)
def _read_specs(config_path: Path) -> dict[str, GraphSpec]:
    config = json.loads(config_path.read_text())
    specs = {}
    for graph_id, target in config["graphs"].items():
        path, _, attribute = target.partition(":")
        file = (config_path.parent / path).resolve().relative_to(PROJECT_ROOT)
        specs[graph_id] = GraphSpec(graph_id, file.with_suffix("").as_posix().replace("/", "."), attribute)
    return specs


def get_spec(graph_id: str) -> GraphSpec:
    specs = graph_specs()
    if graph_id not in specs:
        raise KeyError(f"unknown graph {graph_id!r}; known: {', '.join(specs)}")
    return specs[graph_id]
