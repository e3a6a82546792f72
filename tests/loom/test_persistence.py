"""The same graph code on every checkpointer Loom supports."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from graphs.assistant import build_graph
from loom.persistence import open_checkpointer, open_store, sqlite_file
from loom.processes import scratch_postgres_database
from loom.settings import Settings
from loom.sqlite_saver import ThreadedSqliteSaver
from state.common import RunContext
from tests.fixtures.models import ScriptedModels


async def two_turns(settings: Settings, scripted: type[ScriptedModels]) -> list[str]:
    thread = {"configurable": {"thread_id": f"persist-{uuid.uuid4()}"}}
    async with open_checkpointer(settings) as saver:
        graph = build_graph(scripted(content_writer=["A long poem.", "A short poem."]), saver)
        await graph.ainvoke({"messages": [HumanMessage("Write a poem about rain")]}, thread, context=RunContext())
    async with open_checkpointer(settings) as reopened:  # a new connection sees the same thread
        graph = build_graph(scripted(content_writer=["A short poem."]), reopened)
        state = await graph.ainvoke({"messages": [HumanMessage("make it shorter")]}, thread, context=RunContext())
    return [m.text for m in state["messages"]]


@pytest.mark.parametrize("url", ["sqlite", "memory"])
async def test_embedded_checkpointers(url: str, loom_env: Settings, scripted: type[ScriptedModels]) -> None:
    settings = loom_env.model_copy(update={"checkpoint_url": None if url == "sqlite" else "memory"})
    texts = await two_turns(settings, scripted)
    if url == "sqlite":
        assert texts == ["Write a poem about rain", "A long poem.", "make it shorter", "A short poem."]
    else:  # memory does not outlive the saver: the second turn starts a fresh thread
        assert texts == ["make it shorter", "A short poem."]


async def test_a_thread_written_by_langgraphs_async_sqlite_saver_continues(
    loom_env: Settings, scripted: type[ScriptedModels]
) -> None:
    """Loom's SQLite saver keeps LangGraph's tables: a database from before it (``AsyncSqliteSaver``) reads on."""
    thread = {"configurable": {"thread_id": f"persist-{uuid.uuid4()}"}}
    path = await asyncio.to_thread(sqlite_file, loom_env.resolved_checkpoint_url())
    async with AsyncSqliteSaver.from_conn_string(path) as before:
        graph = build_graph(scripted(content_writer=["A long poem."]), before)
        await graph.ainvoke({"messages": [HumanMessage("Write a poem about rain")]}, thread, context=RunContext())
    async with open_checkpointer(loom_env) as saver:
        assert isinstance(saver, ThreadedSqliteSaver)
        graph = build_graph(scripted(content_writer=["A short poem."]), saver)
        state = await graph.ainvoke({"messages": [HumanMessage("make it shorter")]}, thread, context=RunContext())
        history = [snapshot async for snapshot in graph.aget_state_history(thread)]
    texts = [m.text for m in state["messages"]]
    assert texts == ["Write a poem about rain", "A long poem.", "make it shorter", "A short poem."]
    assert len({s.config["configurable"]["checkpoint_id"] for s in history}) == len(history) > 4


@pytest.mark.postgres
async def test_postgres_checkpointer(postgres_url: str, loom_env: Settings, scripted: type[ScriptedModels]) -> None:
    settings = loom_env.model_copy(update={"checkpoint_url": postgres_url})
    texts = await two_turns(settings, scripted)
    assert texts == ["Write a poem about rain", "A long poem.", "make it shorter", "A short poem."]


async def test_unknown_checkpoint_url_is_refused(loom_env: Settings) -> None:
    settings = loom_env.model_copy(update={"checkpoint_url": "redis://localhost"})
    with pytest.raises(ValueError, match="unsupported checkpoint URL"):
        async with open_checkpointer(settings):
            pass


async def stored_after_reopening(settings: Settings) -> dict[str, object] | None:
    namespace, key = ("users", "demo", "memories"), f"tone-{uuid.uuid4()}"
    async with open_store(settings) as store:
        await store.aput(namespace, key, {"likes": "short answers"})
    async with open_store(settings) as reopened:
        item = await reopened.aget(namespace, key)
    return item.value if item else None


async def test_sqlite_store_outlives_its_connection(loom_env: Settings) -> None:
    assert await stored_after_reopening(loom_env) == {"likes": "short answers"}


@pytest.mark.postgres
async def test_postgres_store_outlives_its_connection(postgres_url: str, loom_env: Settings) -> None:
    settings = loom_env.model_copy(update={"checkpoint_url": postgres_url})
    assert await stored_after_reopening(settings) == {"likes": "short answers"}


def _cut_connections(url: str) -> None:
    """What a PostgreSQL restart, a failover or an idle-connection killer does to every open session."""
    import psycopg
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    with psycopg.connect(url, autocommit=True) as admin:
        cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        assert admin.execute(cut, (database,)).fetchall(), "Loom's connections were open"


@pytest.mark.postgres
async def test_postgres_checkpointer_and_store_survive_cut_connections(
    postgres_url: str, loom_env: Settings, scripted: type[ScriptedModels]
) -> None:
    """They used to hold one connection each for the process's life: once cut, every later run failed."""
    with scratch_postgres_database(postgres_url) as url:
        settings = loom_env.model_copy(update={"checkpoint_url": url})
        thread = {"configurable": {"thread_id": f"cut-{uuid.uuid4()}"}}
        async with open_checkpointer(settings) as saver, open_store(settings) as store:
            graph = build_graph(scripted(content_writer=["A long poem.", "A short poem."]), saver)
            await graph.ainvoke({"messages": [HumanMessage("Write a poem")]}, thread, context=RunContext())
            await store.aput(("users", "demo"), "tone", {"likes": "short answers"})
            await asyncio.to_thread(_cut_connections, url)
            state = await graph.ainvoke({"messages": [HumanMessage("shorter")]}, thread, context=RunContext())
            item = await store.aget(("users", "demo"), "tone")
        assert [m.text for m in state["messages"]][-1] == "A short poem." and len(state["messages"]) == 4
        assert item is not None and item.value == {"likes": "short answers"}
