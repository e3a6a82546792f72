"""Threads and runs as rows (SQLAlchemy 2): written before a request is answered, so a crash loses nothing."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Insert,
    Integer,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
    insert,
    inspect,
    make_url,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from server import migrations, sqlite_connection
from services.stores.db import Base

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
RunStatus = Literal["pending", "running", "success", "error", "interrupted", "cancelled", "timeout"]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
T = TypeVar("T")
TERMINAL: frozenset[RunStatus] = frozenset({"success", "error", "interrupted", "cancelled", "timeout"})
"""The statuses a run ends with; ``pending`` and ``running`` are unfinished (``server.engine.queue.UNFINISHED``)."""


def now() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC timestamp read back with its zone on every engine: SQLite keeps none, and an answer without an
    offset (``2026-12-02T23:20:28``) is read as local time by JavaScript's ``Date``, among others."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def new_id() -> str:
    return str(uuid.uuid4())


class ThreadRow(Base):
    __tablename__ = "loom_threads"

    thread_id: Mapped[str] = mapped_column(String(128), primary_key=True, default=new_id)
    """The key (``loom.threads.thread_key``): the id the API shows, scoped by the owner."""
    owner: Mapped[str] = mapped_column(String(128), index=True)
    graph_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[ThreadStatus] = mapped_column(String(16), default="idle", index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now, onupdate=now)


class RunRow(Base):
    __tablename__ = "loom_runs"
    __table_args__ = (
        Index("ix_loom_runs_claim", "status", "created_at"),
        Index("ix_loom_runs_owner_status", "owner", "status"),
    )

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    thread_id: Mapped[str | None] = mapped_column(ForeignKey("loom_threads.thread_id", ondelete="CASCADE"), index=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    assistant_id: Mapped[str] = mapped_column(String(64))
    graph_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[RunStatus] = mapped_column(String(16), default="pending", index=True)
    multitask_strategy: Mapped[MultitaskStrategy] = mapped_column(String(16), default="enqueue")
    kwargs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The run body as accepted (input/command, config, context, stream modes…), replayed on recovery."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The worker executing the run; its lease ends at ``lease_expires_at`` unless renewed."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    cancel_requested: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """Why some process asked the run to stop (cancelled, interrupt, rollback); the worker reads it."""
    # The ``start_checkpoint_id`` column (migration 0002) is no longer read or written: a rollback finds the
    # run's start from the checkpoints (``RunManager._restore_start``). Left in the table, nullable, so a
    # process of the previous version still reads and inserts runs during a rolling upgrade.
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """Tokens, model calls and USD by node and model (``server.engine.usage``), written when the run ends."""
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The final values (output schema) as JSON, written with the outcome: ``/wait`` answers from any process,
    also for a stateless run whose checkpoints are gone. Stored as the text already serialised, never re-encoded."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now, onupdate=now)
    feedback: Mapped[list[FeedbackRow]] = relationship(
        lazy="raise", passive_deletes=True, order_by="[FeedbackRow.created_at, FeedbackRow.feedback_id]"
    )
    """Read only where asked for (``selectinload``): a run read without it shows no ``feedback`` key."""


class FeedbackRow(Base):
    """A score on a run (a user's thumbs-up, a judge's verdict): deleted with its run."""

    __tablename__ = "loom_run_feedback"

    feedback_id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("loom_runs.run_id", ondelete="CASCADE"), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(256))
    score: Mapped[float | bool] = mapped_column(JSON)
    """A number, or a bool kept as a bool (a thumbs-up is not 1.0)."""
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class CronRow(Base):
    """A scheduled run: fired by whichever worker claims it when ``next_run_date`` has passed."""

    __tablename__ = "loom_crons"

    cron_id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    assistant_id: Mapped[str] = mapped_column(String(64))
    graph_id: Mapped[str] = mapped_column(String(128))
    thread_id: Mapped[str | None] = mapped_column(ForeignKey("loom_threads.thread_id", ondelete="CASCADE"), index=True)
    schedule: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The run body (kwargs, as a run stores them) and its multitask strategy."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    on_run_completed: Mapped[str | None] = mapped_column(String(16), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    next_run_date: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now, onupdate=now)


def insert_row(session: Session, row: Base) -> None:
    """``row`` written by a plain INSERT of the attributes set on it, without the ORM's unit of work.

    On the engine's hot paths, where the flush cost more than the statement. ``row`` stays transient: the
    caller's record of what was written, so the caller sets every attribute it will read back (columns it
    leaves unset get their defaults in the database, not on ``row``).
    """
    mapper = inspect(type(row))
    values = {
        column.key: value
        for attribute in mapper.column_attrs
        for column in attribute.columns
        if (value := getattr(row, attribute.key)) is not None
    }
    session.connection().execute(_insert(mapper.local_table), values)


@functools.lru_cache(maxsize=16)
def _insert(table: Any) -> Insert:
    return insert(table)


def async_url(url: str) -> str:
    """Loom's URLs are sync-style (``sqlite:///x``); the server needs the async drivers."""
    if url.startswith("sqlite:///"):
        return url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


async def open_database(url: str, synchronous: str = "NORMAL") -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """Loom's tables on SQLite (one connection: one writer path, no lock errors) or PostgreSQL."""
    await asyncio.to_thread(migrate, url)  # Alembic reads its scripts from disk: off the event loop
    engine = await asyncio.to_thread(_engine, async_url(url), synchronous)  # resolves a SQLite file's path
    return engine, async_sessionmaker(engine, expire_on_commit=False)


def _engine(url: str, synchronous: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One pooled connection serialises this process's transactions in FIFO order, and BEGIN IMMEDIATE
        # takes the write lock up front, so another process waits on busy_timeout instead of failing.
        # Every session ends its transaction itself (commit, or rollback on close), so the pool's extra
        # rollback on return would only cost another trip to the connection's thread, five times a run.
        path = make_url(url).database or ""
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            pool_reset_on_return=None,
            async_creator=functools.partial(sqlite_connection.connect, path),
        )
        event.listen(engine.sync_engine, "connect", functools.partial(_sqlite_pragmas, synchronous=synchronous))
        event.listen(engine.sync_engine, "begin", _begin_immediate)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    return engine


async def transaction(sessions: async_sessionmaker[AsyncSession], work: Callable[[Session], T]) -> T:
    """``work(session)`` as one transaction: committed when it returns, rolled back if it raises.

    For the engine's hot paths (admission, claims, leases, endings). On SQLite the whole transaction
    runs on the connection's own thread in one trip, where an async session crosses to that thread
    for every statement, its BEGIN and its COMMIT. On PostgreSQL it is the same sync code on the async
    driver (``run_sync``). ``work`` is plain sync code: it must not touch the event loop's objects.
    """
    engine = sessions.kw["bind"]
    if engine.dialect.name != "sqlite":
        async with sessions.begin() as session:
            return await session.run_sync(work)
    async with engine.connect() as connection:  # the pool's one connection: this process's writers queue here
        driver = (await connection.get_raw_connection()).driver_connection
        return await driver.run(functools.partial(_transaction, driver, work))


def _transaction(driver: sqlite_connection.Connection, work: Callable[[Session], T], raw: Any) -> T:
    """On the connection's thread: a sync session over the same SQLite connection, for one transaction."""
    if driver.sync_connection is None:
        engine = create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)
        event.listen(engine, "begin", _begin_immediate)
        driver.sync_connection = engine.connect()  # kept: checking one out per transaction cost more than the work
    with Session(driver.sync_connection, expire_on_commit=False) as session, session.begin():
        return work(session)


def migrate(url: str) -> None:
    """Bring Loom's tables to the newest migration, on a sync connection of the same database."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(async_url(url).replace("sqlite+aiosqlite", "sqlite"))
    try:
        with engine.begin() as connection:
            migrations.upgrade(connection)
    finally:
        engine.dispose()


def _sqlite_pragmas(connection: Any, _record: Any, synchronous: str) -> None:
    connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (``_begin_immediate``)
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
