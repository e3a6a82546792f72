"""The graphs Loom serves, read from a ``langgraph.json`` the way ``langgraph dev`` reads it.

Any project's file works, not only Loom's: ``graphs`` entries are ``./path/file.py:attr`` (relative to
the file) or ``package.module:attr``; the target is a compiled graph, an uncompiled ``StateGraph``,
or a factory (no arguments or a ``RunnableConfig``; sync, async, or an async context manager).
``dependencies`` go on the import path and ``env`` (a ``.env`` file or a mapping) fills the
environment where it is unset. The file is ``LOOM_GRAPHS_CONFIG`` (``loom --config``), else
``./langgraph.json`` in the working directory, else Loom's own.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer
from langgraph_sdk import Auth

from loom.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CONFIG = PROJECT_ROOT / "langgraph.json"
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


class ConfigError(ValueError):
    """A ``langgraph.json`` Loom cannot serve; the message names the entry."""


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    target: str
    """As written in ``langgraph.json``: ``./path.py:attr`` or ``package.module:attr``."""
    base: Path
    """The folder of the ``langgraph.json`` that names it; file paths are relative to it."""

    @property
    def attribute(self) -> str:
        return self.target.rpartition(":")[2]

    @property
    def module(self) -> str:
        """The module's import name (for a file, the dotted path it is importable under, if any)."""
        return load_module(self).__name__

    def load(self) -> Any:
        module = load_module(self)
        if not hasattr(module, self.attribute):
            raise ConfigError(f"graph {self.graph_id!r}: {self.target} has no attribute {self.attribute!r}")
        return getattr(module, self.attribute)

    def run_factory(self) -> Any | None:
        """A factory that takes a ``RunnableConfig`` is called again for every run, with that run's config, as
        langgraph-api does ("rebuild graph at runtime"); other targets are built once (None)."""
        value = self.load()
        return value if _is_factory(value) and _wants_config(value) else None

    async def build(
        self,
        checkpointer: Checkpointer = None,
        store: BaseStore | None = None,
        stack: Any = None,
        config: RunnableConfig | None = None,
        target: Any = None,
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """A compiled graph bound to ``checkpointer`` and ``store``; the project's own object stays untouched.

        A factory is called here with ``config`` (at start: an empty one); an async context manager stays
        open on ``stack`` (an ``AsyncExitStack``) for as long as the caller uses the graph. ``target`` is what
        ``load`` returned, when the caller kept it (imports touch the file system, which the event loop must not).
        """
        value = self.load() if target is None else target
        if _is_factory(value):
            value = await _call_factory(value, stack, config or RunnableConfig(configurable={}))
        if isinstance(value, StateGraph):
            return value.compile(checkpointer=checkpointer, store=store, name=self.graph_id)
        if isinstance(value, CompiledStateGraph):
            update: dict[str, Any] = {"checkpointer": checkpointer}
            if store is not None:
                update["store"] = store
            return value.copy(update=update)
        raise ConfigError(f"graph {self.graph_id!r}: {self.target} is a {type(value).__name__}, not a graph")


def _is_factory(value: Any) -> bool:
    return callable(value) and not isinstance(value, CompiledStateGraph | StateGraph)


def _wants_config(factory: Any) -> bool:
    """As ``langgraph dev``: a factory with a required parameter gets a ``RunnableConfig``, others nothing."""
    parameters = inspect.signature(factory).parameters.values()
    return any(p.default is inspect.Parameter.empty and p.kind != p.VAR_KEYWORD for p in parameters)


async def _call_factory(factory: Any, stack: Any, config: RunnableConfig) -> Any:
    produced = factory(config) if _wants_config(factory) else factory()
    if inspect.isawaitable(produced):
        produced = await produced
    if isinstance(produced, contextlib.AbstractAsyncContextManager):
        if stack is None:
            raise ConfigError("a graph factory that is an async context manager needs the server's lifespan")
        produced = await stack.enter_async_context(produced)
    return produced


def config_path() -> Path:
    configured = get_settings().graphs_config
    if configured is not None:
        return configured.expanduser().resolve()
    local = Path.cwd() / "langgraph.json"
    return local.resolve() if local.is_file() else BUNDLED_CONFIG


def graph_specs() -> dict[str, GraphSpec]:
    return read_config(config_path())


def http_config() -> dict[str, Any]:
    """The ``http`` section of the served ``langgraph.json`` (``cors``…), empty when absent."""
    return config_section("http")


def config_section(name: str) -> dict[str, Any]:
    """One object-valued section of the served ``langgraph.json`` (``http``, ``store``…), empty when absent."""
    section = _raw_config(config_path()).get(name)
    return section if isinstance(section, dict) else {}


def auth_handlers() -> Any:
    """The ``langgraph_sdk.Auth`` object ``auth.path`` names (``./auth.py:auth`` or ``module:auth``), or None."""
    path = config_path()
    section = _raw_config(path).get("auth")
    target = section.get("path") if isinstance(section, dict) else None
    if target is None:
        return None
    if not isinstance(target, str) or ":" not in target:
        raise ConfigError(f"{path}: auth.path must be 'path.py:attr' or 'module:attr', not {target!r}")
    read_config(path)  # the project's dependencies go on the import path first
    auth = GraphSpec("auth", target, path.parent).load()
    if not isinstance(auth, Auth):
        raise ConfigError(f"{path}: auth.path {target} is a {type(auth).__name__}, not a langgraph_sdk.Auth")
    return auth


@lru_cache(maxsize=8)
def _raw_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"no langgraph.json at {path}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a langgraph.json is a JSON object")
    return config


@lru_cache(maxsize=8)
def read_config(path: Path) -> dict[str, GraphSpec]:
    """The graphs of one ``langgraph.json``; its dependencies join the import path, its env the environment."""
    config = _raw_config(path)
    graphs = config.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError(f"{path}: 'graphs' must map graph ids to 'path.py:attr' or 'module:attr'")
    base = path.parent
    for dependency in reversed(config.get("dependencies") or []):
        folder = str((base / dependency).resolve())
        if (base / dependency).is_dir() and folder not in sys.path:
            sys.path.insert(0, folder)
    _apply_env(config.get("env"), base)
    specs = {}
    for graph_id, target in graphs.items():
        if not isinstance(target, str) or ":" not in target:
            raise ConfigError(f"{path}: graph {graph_id!r} must be 'path.py:attr' or 'module:attr', not {target!r}")
        specs[graph_id] = GraphSpec(graph_id, target, base)
    return specs


def _apply_env(env: Any, base: Path) -> None:
    """``env`` is a ``.env`` file or a mapping; values fill the environment where it is unset, never override."""
    if isinstance(env, str):
        from dotenv import dotenv_values

        values = {key: value for key, value in dotenv_values(base / env).items() if value is not None}
    elif isinstance(env, dict):
        values = {str(key): str(value) for key, value in env.items()}
    else:
        return
    for key, value in values.items():
        os.environ.setdefault(key, value)
    get_settings.cache_clear()


def load_module(spec: GraphSpec) -> ModuleType:
    location = spec.target.rpartition(":")[0]
    if not location.endswith(".py"):
        return importlib.import_module(location)
    file = (spec.base / location).resolve()
    if not file.is_file():
        raise ConfigError(f"graph {spec.graph_id!r}: no file {file}")
    if (dotted := _importable_name(file)) is not None:
        return importlib.import_module(dotted)
    return _import_file(file)


def _importable_name(file: Path) -> str | None:
    """``graphs.assistant`` for ``<root>/graphs/assistant.py`` when ``<root>`` is on the import path and
    every folder between is a package, so the graph's module is the one its own code imports."""
    for entry in sys.path:
        root = Path(entry or ".").resolve()
        if not file.is_relative_to(root):
            continue
        parts = file.relative_to(root).with_suffix("").parts
        packages_ok = all((root.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts)))
        if parts and packages_ok and all(_IDENTIFIER.match(part) for part in parts):
            return ".".join(parts)
    return None


def _import_file(file: Path) -> ModuleType:
    """A file outside any package (a folder with a hyphen, a loose script): imported under a name from its path."""
    name = "loom_graph_" + re.sub(r"\W", "_", str(file.with_suffix("")))
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, file)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import {file}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def get_spec(graph_id: str) -> GraphSpec:
    specs = graph_specs()
    if graph_id not in specs:
        raise KeyError(f"unknown graph {graph_id!r}; known: {', '.join(specs)}")
    return specs[graph_id]
