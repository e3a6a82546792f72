"""Checkpointers and stores by URL: SQLite by default, PostgreSQL for scale, memory for throwaway runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from loom.settings import Settings


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Open the configured checkpointer for the lifetime of the block (CLI command or server)."""
    url = settings.resolved_checkpoint_url()
    if url == "memory":
        yield InMemorySaver()
    elif url.startswith("sqlite:///"):
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            yield saver
    elif url.startswith(("postgres://", "postgresql://")):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield saver
    else:
        raise ValueError(f"unsupported checkpoint URL {url!r}: use sqlite:///path, postgresql://… or memory")


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[BaseStore]:
    """LangGraph's key-value store on the checkpointer's backend: memory that outlives a thread.

    Graphs read it as ``runtime.store``; the server's ``/store`` routes expose it per user.
    """
    url = settings.resolved_checkpoint_url()
    if url == "memory":
        yield InMemoryStore()
    elif url.startswith("sqlite:///"):
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        path = Path(url.removeprefix("sqlite:///")).with_name("store.sqlite")
        path.parent.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteStore.from_conn_string(str(path)) as store:
            await store.setup()
            yield store
    elif url.startswith(("postgres://", "postgresql://")):
        from langgraph.store.postgres.aio import AsyncPostgresStore

        async with AsyncPostgresStore.from_conn_string(url) as pg_store:
            await pg_store.setup()
            yield pg_store
    else:
        raise ValueError(f"unsupported checkpoint URL {url!r}: use sqlite:///path, postgresql://… or memory")
