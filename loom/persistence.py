"""Checkpointers and stores by URL: SQLite by default, PostgreSQL for scale, memory for throwaway runs."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore, IndexConfig, TTLConfig
from langgraph.store.memory import InMemoryStore

from loom.settings import Settings
from loom.sqlite_saver import open_sqlite_saver
from loom.vector_index import PythonVectorIndex

Backend = Literal["memory", "sqlite", "postgres"]


def backend_of(url: str) -> Backend:
    """Which backend a checkpoint URL names; the checkpointer and the store share it."""
    if url == "memory":
        return "memory"
    if url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith(("postgres://", "postgresql://")):
        return "postgres"
    raise ValueError(f"unsupported checkpoint URL {url!r}: use sqlite:///path, postgresql://… or memory")


def sqlite_file(url: str, name: str | None = None) -> str:
    """The database file of a ``sqlite:///`` URL (or a sibling ``name``), its folder created."""
    path = Path(url.removeprefix("sqlite:///"))
    path = path.with_name(name) if name else path
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


async def _import(module: str) -> Any:
    """An optional backend's module, imported off the event loop (psycopg reads files as it loads)."""
    return await asyncio.to_thread(importlib.import_module, module)


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Open the configured checkpointer for the lifetime of the block (CLI command or server)."""
    url = settings.resolved_checkpoint_url()
    backend = backend_of(url)
    if backend == "memory":
        yield InMemorySaver()
    elif backend == "sqlite":
        path = await asyncio.to_thread(sqlite_file, url)
        async with open_sqlite_saver(path, settings.sqlite_synchronous) as saver:
            yield saver
    else:
        postgres = await _import("langgraph.checkpoint.postgres.aio")
        async with _postgres_pool(url) as pool:
            saver = postgres.AsyncPostgresSaver(pool)
            async with setting_up(url):
                await saver.setup()
            yield saver


@asynccontextmanager
async def open_store(
    settings: Settings, index: IndexConfig | None = None, ttl: TTLConfig | None = None
) -> AsyncIterator[BaseStore]:
    """LangGraph's key-value store on the checkpointer's backend: memory that outlives a thread.

    Graphs read it as ``runtime.store``; the server's ``/store`` routes expose it per user. ``index``
    (embeddings, dims, fields) enables semantic search, ``ttl`` expiry, swept in the background when
    ``sweep_interval_minutes`` is set (``langgraph.json``'s ``store`` section).
    """
    url = settings.resolved_checkpoint_url()
    backend = backend_of(url)
    if backend == "memory":
        yield InMemoryStore(index=index)
    elif backend == "sqlite":
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        path = await asyncio.to_thread(sqlite_file, url, "store.sqlite")
        native = index if _sqlite_loads_extensions() else None  # sqlite-vec is an extension
        async with AsyncSqliteStore.from_conn_string(path, index=native, ttl=ttl) as store:
            await store.setup()
            await store.conn.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
            async with _swept(store, ttl):
                yield store if index is None or native else PythonVectorIndex(store, index)
    else:
        postgres = await _import("langgraph.store.postgres.aio")
        native = index if index is not None and await _pgvector_available(url) else None
        async with _postgres_pool(url) as pool:
            pg_store = postgres.AsyncPostgresStore(pool, index=native, ttl=ttl)
            async with setting_up(url):
                await pg_store.setup()
            async with _swept(pg_store, ttl):
                yield pg_store if index is None or native else PythonVectorIndex(pg_store, index)


SETUP_LOCK = 0x4C475355  # "LGSU"
"""The PostgreSQL advisory lock a process holds while it sets up the checkpointer's or the store's tables.
LangGraph's ``setup()`` reads which of its migrations ran, then runs the rest, so two processes starting
together on an empty database both create ``checkpoint_migrations`` and one fails (``UniqueViolation``).
Loom's own tables have a lock of their own (``server.migrations``), held for the migration's transaction."""
SETUP_POLL_S = 0.1


@asynccontextmanager
async def setting_up(url: str) -> AsyncIterator[None]:
    """One process at a time through the block, on a connection of its own (closing it releases the lock).

    The lock is taken by polling, not by a blocking ``pg_advisory_lock``: LangGraph's migrations run
    ``CREATE INDEX CONCURRENTLY``, which waits for every open transaction in the database, a process
    blocked waiting for this lock included, and that one waits for the index: neither would ever end.
    """
    psycopg = await _import("psycopg")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while not (await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (SETUP_LOCK,))).fetchone())[0]:
            await asyncio.sleep(SETUP_POLL_S)  # another process is setting up: no statement open meanwhile
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


POSTGRES_POOL_SIZE = 10
"""Connections per pool (one for the checkpointer, one for the store, per process): each is held for one
statement or transaction, not for a run, so a few serve many concurrent runs."""


@asynccontextmanager
async def _postgres_pool(url: str) -> AsyncIterator[Any]:
    """Connections for LangGraph's PostgreSQL checkpointer or store, checked as each is taken and replaced
    when broken. ``from_conn_string`` opens one connection for the process's life: once a restart, a
    failover or an idle-connection killer closed it, every later run of the process failed."""
    pools, rows = await _import("psycopg_pool"), await _import("psycopg.rows")
    pool = pools.AsyncConnectionPool(
        url,
        min_size=1,
        max_size=POSTGRES_POOL_SIZE,
        open=False,
        check=pools.AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": rows.dict_row},  # as LangGraph's own
    )
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        await pool.close()


def _sqlite_loads_extensions() -> bool:
    return hasattr(sqlite3.Connection, "enable_load_extension")


async def _pgvector_available(url: str) -> bool:
    """Whether the server can create LangGraph's vector tables (the pgvector extension is installed)."""
    psycopg = await _import("psycopg")
    async with await psycopg.AsyncConnection.connect(url) as conn:
        found = await (await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).fetchone()
    return found is not None


@asynccontextmanager
async def _swept(store: Any, ttl: TTLConfig | None) -> AsyncIterator[None]:
    """Expired items deleted every ``sweep_interval_minutes`` while the store is open."""
    if not (ttl or {}).get("sweep_interval_minutes"):
        yield
        return
    await store.start_ttl_sweeper()
    try:
        yield
    finally:
        await store.stop_ttl_sweeper(timeout=5)
