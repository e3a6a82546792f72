"""One view of LangGraph's store per caller: the same items through ``/store`` and a graph's ``runtime.store``.

Every namespace a caller names is kept under the scope ``store_scope`` decides (built in: ``("users",
<caller>)``), and handed back without it, so a graph writing ``("memories", …)`` and the same user's
``client.store.search_items(["memories"])`` meet, and another user never sees them. The caller comes
from the server (the API key), never from the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph._internal._constants import CONFIG_KEY_RUNTIME
from langgraph.runtime import Runtime
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

ConfigT = TypeVar("ConfigT", dict[str, Any], RunnableConfig)


def store_scope(user: str) -> tuple[str, ...]:
    """Where ``user``'s namespaces live in the shared store: the one place that decides it.

    Custom auth (``@auth.on.store`` handlers) plugs in here: whatever prefix it decides for the caller
    applies to ``/store`` and ``runtime.store`` alike. LangGraph refuses a ``.`` in a namespace label, and
    identities are often emails: such an id is kept escaped (``%`` and ``.`` as ``%25`` and ``%2E``) under a
    scope of its own, so it can neither fail nor meet an id that needs no escaping.
    """
    if "." not in user:
        return ("users", user)
    return ("users~escaped", user.replace("%", "%25").replace(".", "%2E"))


class ScopedStore(BaseStore):
    """``store`` as one caller sees it: their namespaces are prefixed going in and stripped coming out."""

    def __init__(self, store: BaseStore, user: str) -> None:
        self.store = store
        self.scope = store_scope(user)
        self.supports_ttl = store.supports_ttl
        self.ttl_config = store.ttl_config

    @property
    def index_config(self) -> IndexConfig | None:
        """The embedding index of the shared store; None when semantic search is not configured."""
        config: IndexConfig | None = getattr(self.store, "index_config", None)
        return config

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        scoped = [self._scoped(op) for op in ops]
        return [self._unscoped(result) for result in self.store.batch(scoped)]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        scoped = [self._scoped(op) for op in ops]
        return [self._unscoped(result) for result in await self.store.abatch(scoped)]

    def _scoped(self, op: Op) -> Op:
        if isinstance(op, GetOp | PutOp):
            return op._replace(namespace=(*self.scope, *op.namespace))
        if isinstance(op, SearchOp):
            return op._replace(namespace_prefix=(*self.scope, *op.namespace_prefix))
        conditions = [
            MatchCondition("prefix", (*self.scope, *c.path)) if c.match_type == "prefix" else c
            for c in op.match_conditions or ()
        ]
        if not any(c.match_type == "prefix" for c in conditions):
            conditions.insert(0, MatchCondition("prefix", self.scope))
        depth = op.max_depth + len(self.scope) if op.max_depth is not None else None
        return op._replace(match_conditions=tuple(conditions), max_depth=depth)

    def _unscoped(self, result: Any) -> Any:
        """Results as the caller wrote them: items and namespaces without the scope, times with their zone."""
        if isinstance(result, SearchItem):
            return SearchItem(
                self._strip(result.namespace),
                result.key,
                result.value,
                _utc(result.created_at),
                _utc(result.updated_at),
                result.score,
            )
        if isinstance(result, Item):
            return Item(
                value=result.value,
                key=result.key,
                namespace=self._strip(result.namespace),
                created_at=_utc(result.created_at),
                updated_at=_utc(result.updated_at),
            )
        if isinstance(result, list):
            return [self._unscoped(entry) for entry in result]
        if isinstance(result, tuple):  # a namespace from list_namespaces
            return self._strip(result)
        return result

    def _strip(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        return namespace[len(self.scope) :]


def with_caller_store(config: ConfigT, store: BaseStore | None, user: str) -> ConfigT:
    """``config`` for a run whose ``runtime.store`` is ``user``'s view of ``store`` (as langgraph-api passes it)."""
    if store is not None:
        config["configurable"][CONFIG_KEY_RUNTIME] = Runtime(store=ScopedStore(store, user))
    return config


def _utc(moment: datetime) -> datetime:
    """LangGraph's SQLite store keeps ``CURRENT_TIMESTAMP`` (UTC) and reads it back without a zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
