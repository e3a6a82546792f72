"""Semantic search for a store that cannot do it itself: SQLite where Python's ``sqlite3`` cannot load
extensions (pyenv's and macOS's default builds), so LangGraph's SQLite store has no ``sqlite-vec``, and
PostgreSQL without the pgvector extension.

Items stay in the wrapped store; each indexed item's vectors sit beside it under ``("loom_vectors",
*namespace)`` with the same key and TTL. A query ranks the items under its prefix (those matching its
filter, at most ``CANDIDATES``) by cosine similarity in Python, as LangGraph's in-memory store scores them
(an item's best field); items without vectors are left out, as LangGraph's SQL stores leave them out.
Meant for a development store, not millions of items.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

VECTORS = "loom_vectors"
CANDIDATES = 10_000


class PythonVectorIndex(BaseStore):
    def __init__(self, store: BaseStore, index: IndexConfig) -> None:
        self.store = store
        self.index_config = index
        self.embeddings = ensure_embeddings(index["embed"])
        self.fields = index.get("fields") or ["$"]
        self.supports_ttl = store.supports_ttl
        self.ttl_config = store.ttl_config
        self.loop = asyncio.get_running_loop()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """From a sync node in a worker thread, as LangGraph's async stores allow; on the loop it would deadlock."""
        with contextlib.suppress(RuntimeError):  # no running loop in this thread: the usual case
            if asyncio.get_running_loop() is self.loop:
                raise asyncio.InvalidStateError("on the event loop, use the store's async methods (aput, asearch…)")
        return asyncio.run_coroutine_threadsafe(self.abatch(ops), self.loop).result()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        broad = [_broad(op) if isinstance(op, SearchOp) and op.query else op for op in ops]
        results = await self.store.abatch(broad)
        vector_ops = [await self._vectors_for(op) for op in ops if isinstance(op, PutOp)]
        if vector_ops:
            await self.store.abatch(vector_ops)
        return [
            await self._rank(op, found) if isinstance(op, SearchOp) and op.query else found
            for op, found in zip(ops, results, strict=True)
        ]

    async def _vectors_for(self, op: PutOp) -> PutOp:
        """The put's vectors beside it; a delete, or a put with ``index=False``, drops them."""
        where = (VECTORS, *op.namespace)
        if op.value is None or op.index is False:
            return PutOp(where, op.key, None)
        # As LangGraph's stores: a configured field goes to get_text_at_path as written, so "$" (the default) is
        # the whole value as JSON text; a put's own ``index`` paths are tokenized first, so "$" there is a key.
        paths: list[Any] = self.fields if op.index is None else [tokenize_path(path) for path in op.index]
        texts = [text for path in paths for text in get_text_at_path(op.value, path)]
        vectors = await self.embeddings.aembed_documents(texts) if texts else []
        return PutOp(where, op.key, {"vectors": vectors}, index=False, ttl=op.ttl)

    async def _rank(self, op: SearchOp, found: Any) -> list[SearchItem]:
        query = await self.embeddings.aembed_query(op.query or "")
        stored = await self.store.abatch([GetOp((VECTORS, *item.namespace), item.key) for item in found])
        scores = [_best(query, vectors) for vectors in stored]
        scored = [(score, item) for score, item in zip(scores, found, strict=True) if score is not None]
        scored.sort(key=lambda pair: pair[0], reverse=True)
        return [_with_score(item, score) for score, item in scored[op.offset : op.offset + op.limit]]


def _broad(op: SearchOp) -> SearchOp:
    """The query's candidates: everything under its prefix that its filter lets through."""
    return op._replace(query=None, limit=CANDIDATES, offset=0)


def _best(query: list[float], stored: Any) -> float | None:
    """The item's closest field to the query (cosine), None when it has no vectors."""
    vectors = (stored.value.get("vectors") or []) if stored is not None else []
    return max((_cosine(query, vector) for vector in vectors), default=None)


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=False)) / norm if norm else 0.0


def _with_score(item: Item, score: float | None) -> SearchItem:
    return SearchItem(item.namespace, item.key, item.value, item.created_at, item.updated_at, score)
