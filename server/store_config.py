"""``store.index`` and ``store.ttl`` of the served ``langgraph.json``, in the shapes LangGraph's stores take.

``index.embed`` is read as ``langgraph dev`` reads it: ``./path/file.py:function`` (relative to the
``langgraph.json``) or ``package.module:function`` naming an ``Embeddings`` object or a function of a list of
texts (sync or async), else a ``provider:model`` string for LangChain's ``init_embeddings``. OpenAI's key
and base URL come from Loom's settings. A section Loom cannot use stops the server at start, naming the entry.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.embeddings import Embeddings
from langgraph.store.base import IndexConfig, TTLConfig, ensure_embeddings

from loom.settings import Settings
from server.registry import ConfigError, GraphSpec, config_path, config_section, graph_specs

TTL_KEYS = {"refresh_on_read", "default_ttl", "sweep_interval_minutes"}


class StoreOptions(TypedDict):
    index: IndexConfig | None
    ttl: TTLConfig | None


def store_options(settings: Settings) -> StoreOptions:
    """What ``open_store`` needs from ``langgraph.json``; call it off the event loop (it imports and opens files)."""
    graph_specs()  # the project's dependencies on the import path and its env applied, as for its graphs
    section = config_section("store")
    return {"index": index_config(section.get("index"), settings), "ttl": ttl_config(section.get("ttl"))}


def index_config(index: Any, settings: Settings) -> IndexConfig | None:
    if index is None:
        return None
    if not isinstance(index, dict) or not isinstance(index.get("embed"), str):
        raise ConfigError("store.index: an object with 'embed' ('provider:model' or 'path.py:function') and 'dims'")
    dims = index.get("dims")
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise ConfigError(f"store.index.dims: a positive integer (the embedding's length), not {dims!r}")
    fields = index.get("fields")
    if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) and f for f in fields)):
        raise ConfigError("store.index.fields: a list of JSON paths such as ['text', 'memory.summary']")
    config = IndexConfig(dims=dims, embed=embeddings(index["embed"], settings))
    if fields is not None:
        config["fields"] = fields
    return config


def embeddings(embed: str, settings: Settings) -> Embeddings:
    """The project's own embeddings by path or module, else a LangChain ``provider:model``."""
    if ":" not in embed:
        raise ConfigError(f"store.index.embed: 'provider:model' or 'path.py:function', not {embed!r}")
    spec = GraphSpec("store.index.embed", embed, config_path().parent)
    if ".py:" in embed:
        return ensure_embeddings(spec.load())
    try:
        return ensure_embeddings(spec.load())
    except (ImportError, ConfigError):
        pass  # not a module of the project's: a provider name
    from langchain.embeddings import init_embeddings

    try:
        return init_embeddings(embed, **credentials(embed, settings))
    except Exception as exc:  # unknown provider, its package missing, no credentials: the server cannot start
        raise ConfigError(f"store.index.embed: {exc}") from exc


def credentials(embed: str, settings: Settings) -> dict[str, Any]:
    """OpenAI's key and base URL from Loom's settings, so embeddings reach the same server as the chat models."""
    if embed.partition(":")[0] != "openai":
        return {}
    found: dict[str, Any] = {}
    if settings.openai_api_key is not None:
        found["api_key"] = settings.openai_api_key.get_secret_value()
    if settings.openai_base_url:
        found["base_url"] = settings.openai_base_url
    return found


def ttl_config(ttl: Any) -> TTLConfig | None:
    if ttl is None:
        return None
    if not isinstance(ttl, dict):
        raise ConfigError("store.ttl: an object with refresh_on_read, default_ttl, sweep_interval_minutes")
    for key, value in ttl.items():
        if key not in TTL_KEYS:
            raise ConfigError(f"store.ttl.{key}: unknown; use one of {sorted(TTL_KEYS)}")
        if value is None or _ttl_value_ok(key, value):
            continue
        wanted = "true or false" if key == "refresh_on_read" else "positive number"
        raise ConfigError(f"store.ttl.{key}: {value!r} is not a {wanted}")
    return TTLConfig(**ttl)  # type: ignore[typeddict-item]


def _ttl_value_ok(key: str, value: Any) -> bool:
    if key == "refresh_on_read":
        return isinstance(value, bool)
    kind = int if key == "sweep_interval_minutes" else (int, float)
    return isinstance(value, kind) and not isinstance(value, bool) and value > 0
