"""The graphs Loom serves, read from a ``langgraph.json`` the way ``langgraph dev`` reads it.

Any project's file works, not only Loom's: ``graphs`` entries are ``./path/file.py:attr`` (relative to
the file) or ``package.module:attr``; the target is a compiled graph, an uncompiled ``StateGraph``,
or a factory (sync, async, or an async context manager) taking nothing, a ``RunnableConfig``, a
``langgraph_sdk.runtime.ServerRuntime`` or both (by annotation, as langgraph-api reads them).
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
import logging
import os
import re
import sys
from dataclasses import dataclass, field, is_dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, get_args, get_origin, get_type_hints

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer
from langgraph_sdk import Auth
from langgraph_sdk.runtime import AccessContext, ServerRuntime, _ExecutionRuntime, _ReadRuntime
from pydantic import BaseModel

from loom.settings import get_settings
from server.errors import ApiError, not_found
from server.graph_schemas import adapter

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CONFIG = PROJECT_ROOT / "langgraph.json"
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
log = logging.getLogger("loom.server")


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
        """A factory that takes a config or a ``ServerRuntime`` is called again wherever the graph is used (a run,
        a state read or update, its schemas and drawing), as langgraph-api does ("rebuild graph at runtime");
        other targets are built once (None)."""
        value = self.load()
        return value if _is_factory(value) and _takes_arguments(value) else None

    async def build(
        self,
        checkpointer: Checkpointer = None,
        store: BaseStore | None = None,
        stack: Any = None,
        call: FactoryCall | None = None,
        target: Any = None,
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """A compiled graph bound to ``checkpointer`` and ``store``; the project's own object stays untouched.

        A factory is called here as ``call`` says (at start: for ``assistants.read``, with no user and an empty
        config); an async context manager stays open on ``stack`` (an ``AsyncExitStack``) for as long as the caller
        uses the graph. ``target`` is what ``load`` returned, when the caller kept it (imports touch the file
        system, which the event loop must not).
        """
        value = self.load() if target is None else target
        if _is_factory(value):
            value = await _call_factory(value, stack, call or FactoryCall(store=store))
        if isinstance(value, StateGraph):
            return value.compile(checkpointer=checkpointer, store=store, name=self.graph_id)
        if isinstance(value, CompiledStateGraph):
            update: dict[str, Any] = {"checkpointer": checkpointer}
            if store is not None:
                update["store"] = store
            return value.copy(update=update)
        raise ConfigError(f"graph {self.graph_id!r}: {self.target} is a {type(value).__name__}, not a graph")


@dataclass(frozen=True)
class FactoryCall:
    """Why and for whom a factory is called, as langgraph-api's ``ServerRuntime`` tells it."""

    access: AccessContext = "assistants.read"
    config: RunnableConfig | dict[str, Any] = field(default_factory=dict)
    user: Any = None
    """The caller (a ``langgraph_sdk`` ``BaseUser``); None when the graph is built at start."""
    store: BaseStore | None = None
    """The store as the caller sees it (their namespaces only)."""
    context: Any = None
    """The run's context (``threads.create_run`` only)."""

    def runtime(self, annotation: Any) -> Any:
        """The ``ServerRuntime`` for a parameter annotated ``annotation`` (``ServerRuntime[Context]`` gets the
        context as a ``Context`` when its graph declares no schema of its own)."""
        if self.access != "threads.create_run":
            return _ReadRuntime(access_context=self.access, user=self.user, store=self.store)  # type: ignore[arg-type]
        context, wanted = self.context, next(iter(get_args(annotation)), None)
        if isinstance(context, dict) and wanted is not None and (is_dataclass(wanted) or _is_model(wanted)):
            checked = adapter(wanted)
            context = checked.validate_python(context) if checked is not None else wanted(**context)
        return _ExecutionRuntime(access_context=self.access, user=self.user, store=self.store, context=context)  # type: ignore[arg-type]


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _is_factory(value: Any) -> bool:
    return callable(value) and not isinstance(value, CompiledStateGraph | StateGraph)


def _takes_arguments(factory: Any) -> bool:
    return bool(_parameters(factory))


def _parameters(factory: Any) -> list[tuple[inspect.Parameter, Any]]:
    """The parameters a factory is given, each with its annotation if it is a ``ServerRuntime`` (else None), as
    langgraph-api reads them: a ``ServerRuntime`` parameter gets the runtime, any other required one the config."""
    try:
        hints = get_type_hints(inspect.unwrap(factory))
    except Exception:  # a forward reference the module cannot resolve: read the annotations as written
        hints = {}
    given = []
    for parameter in inspect.signature(factory).parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        required = parameter.default is parameter.empty and parameter.kind not in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        )
        if _is_runtime(annotation):
            given.append((parameter, annotation))
        elif required:
            given.append((parameter, None))
    return given


def _is_runtime(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return "ServerRuntime" in annotation
    origin = get_origin(annotation) or annotation
    return origin is ServerRuntime or origin in (_ExecutionRuntime, _ReadRuntime)


async def _call_factory(factory: Any, stack: Any, call: FactoryCall) -> Any:
    args, kwargs = [], {}
    for parameter, runtime in _parameters(factory):
        value = call.config if runtime is None else call.runtime(runtime)
        if parameter.kind is parameter.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[parameter.name] = value
    produced = factory(*args, **kwargs)
    if inspect.isawaitable(produced):
        produced = await produced
    if isinstance(produced, contextlib.AbstractAsyncContextManager):
        if stack is None:
            raise ConfigError("a graph factory that is an async context manager needs the server's lifespan")
        produced = await stack.enter_async_context(produced)
    return produced


class Graphs(dict[str, CompiledStateGraph[Any, Any, Any, Any]]):
    """The served graphs by id. A graph that failed to load is absent (not searched, not counted), and naming it
    (``graphs[id]``, ``require``) is a clear error instead of an unknown name."""

    def __init__(self, loaded: dict[str, CompiledStateGraph[Any, Any, Any, Any]], failed: dict[str, str]) -> None:
        super().__init__(loaded)
        self.failed = failed
        """Graph id → why it failed to load."""

    def require(self, graph_id: str) -> None:
        """A 500 naming the graph and its load error, if ``graph_id`` failed to load."""
        if graph_id in self.failed:
            message = f"graph {graph_id!r} failed to load when the server started ({self.failed[graph_id]}); "
            raise ApiError(500, "graph_failed_to_load", message + "fix the project and restart the server")

    def served(self, graph_id: str) -> None:
        """Nothing if ``graph_id`` is served; else its load error, or a 404 for a name no graph has."""
        self.require(graph_id)
        if graph_id not in self:
            raise not_found("graph", graph_id)

    def __missing__(self, graph_id: str) -> CompiledStateGraph[Any, Any, Any, Any]:
        self.require(graph_id)
        raise KeyError(graph_id)


async def build_all(specs: dict[str, GraphSpec], checkpointer: Checkpointer, store: BaseStore, stack: Any) -> Graphs:
    """Every graph of ``specs``, built at start; one that fails is logged by name and left out, not fatal."""
    loaded, failed = {}, {}
    for graph_id, spec in specs.items():
        try:
            loaded[graph_id] = await spec.build(checkpointer, store, stack)
        except Exception as exc:  # the project's own code: an import, a factory, anything may fail
            log.exception("graph %r (%s) failed to load and is not served", graph_id, spec.target)
            failed[graph_id] = f"{type(exc).__name__}: {exc}"
    return Graphs(loaded, failed)


def require_loaded(graphs: Any, graph_id: str) -> None:
    """``Graphs.require`` for whatever mapping of graphs a caller holds."""
    if isinstance(graphs, Graphs):
        graphs.require(graph_id)


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
