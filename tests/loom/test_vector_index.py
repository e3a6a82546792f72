"""Semantic search on the SQLite store, whether or not this Python's sqlite3 can load sqlite-vec."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import BaseStore, IndexConfig
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from loom.persistence import open_store
from loom.settings import Settings
from loom.vector_index import PythonVectorIndex

FACTS = {
    "cat": "The user's cat is called Miso",
    "coffee": "The user drinks coffee black without sugar",
    "city": "The user lives in Lisbon near the river",
}


def words(texts: list[str]) -> list[list[float]]:
    """Deterministic embeddings: words hashed into 32 buckets, normalised."""
    vectors = []
    for text in texts:
        vector = [0.0] * 32
        for word in re.findall(r"[a-z]{3,}", text.lower()):
            vector[zlib.crc32(word.encode()) % 32] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vectors.append([v / norm for v in vector])
    return vectors


INDEX = IndexConfig(dims=32, embed=words, fields=["text"])
WHOLE = IndexConfig(dims=32, embed=words)  # no fields: LangGraph's default ["$"], the whole value as JSON text


async def ranked(store: BaseStore, query: str) -> list[tuple[str, float | None]]:
    items = await store.asearch(("users", "alice"), query=query, limit=10)
    return [(item.key, None if item.score is None else round(item.score, 6)) for item in items]


async def clear(store: BaseStore) -> None:
    """A PostgreSQL store outlives the test: start from no items."""
    for user in ("alice", "bob"):
        for item in await store.asearch(("users", user), limit=100):
            await store.adelete(item.namespace, item.key)


async def fill(store: BaseStore) -> None:
    for key, fact in FACTS.items():
        await store.aput(("users", "alice", "memories"), key, {"text": fact})
    await store.aput(("users", "alice", "memories"), "secret", {"text": "coffee coffee coffee"}, index=False)
    await store.aput(("users", "bob", "memories"), "other", {"text": "Bob drinks coffee"})


@asynccontextmanager
async def filled_side_by_side(tmp_path: Path, index: Any) -> AsyncIterator[tuple[BaseStore, PythonVectorIndex]]:
    """LangGraph's in-memory store and the Python index over a plain SQLite store, both given the same items."""
    reference = InMemoryStore(index=index)
    await fill(reference)
    async with AsyncSqliteStore.from_conn_string(str(tmp_path / "plain.sqlite")) as plain:
        await plain.setup()
        store = PythonVectorIndex(plain, index)
        await fill(store)
        yield reference, store


async def test_python_ranking_scores_as_langgraphs_in_memory_store(tmp_path: Path) -> None:
    """The fallback, whatever this Python's sqlite3 can do: the same scores, unindexed items left out."""
    async with filled_side_by_side(tmp_path, INDEX) as (reference, store):
        for query in ("How does the user take their coffee?", "What is my cat called?", "a river city"):
            expected = [(key, score) for key, score in await ranked(reference, query) if score is not None]
            assert await ranked(store, query) == expected
        # rewritten with index=False: its old vectors go (LangGraph's SQLite store would keep ranking them)
        await store.aput(("users", "alice", "memories"), "cat", {"text": FACTS["cat"]}, index=False)
        assert "cat" not in [key for key, _ in await ranked(store, "What is my cat called?")]
        assert (await store.aget(("users", "alice", "memories"), "cat")) is not None


@pytest.mark.parametrize("index", [WHOLE, IndexConfig(dims=32, embed=words, fields=["$"])])
async def test_the_whole_value_is_embedded_for_the_path_dollar_as_langgraph_does(tmp_path: Path, index: Any) -> None:
    """``"$"`` (and no ``fields`` at all) embeds the value as JSON text, as LangGraph's stores do; a put's own
    ``index`` paths are taken as those stores take them."""
    async with filled_side_by_side(tmp_path, index) as (reference, store):
        for where in (reference, store):
            await where.aput(("users", "alice", "notes"), "tea", {"text": "green tea", "when": "morning"}, index=["$"])
            await where.aput(("users", "alice", "notes"), "walk", {"text": "a long walk", "when": "morning"}, ["when"])
        for query in ("How does the user take their coffee?", "What is my cat called?", "morning tea"):
            expected = [(key, score) for key, score in await ranked(reference, query) if score is not None]
            assert await ranked(store, query) == expected
        assert (await ranked(store, "coffee"))[0][0] == "coffee"


async def test_semantic_search_on_the_default_store(loom_env: Settings) -> None:
    """sqlite-vec where sqlite3 loads extensions, else the fallback: the same answers either way."""
    await semantic_search(loom_env)


@pytest.mark.postgres
async def test_semantic_search_on_postgres(loom_env: Settings, postgres_url: str) -> None:
    """pgvector where the server has it, else the fallback."""
    await semantic_search(loom_env.model_copy(update={"checkpoint_url": postgres_url}))


async def semantic_search(settings: Settings) -> None:
    async with open_store(settings, index=INDEX) as store:
        await clear(store)
        await fill(store)
        keys = [key for key, _ in await ranked(store, "coffee")]
        assert keys[0] == "coffee" and sorted(keys[1:]) == ["cat", "city"]  # not "secret", never bob's
        assert (await ranked(store, "What is my cat called?"))[0][0] == "cat"
        await store.adelete(("users", "alice", "memories"), "coffee")
        assert sorted(key for key, _ in await ranked(store, "coffee")) == ["cat", "city"]
