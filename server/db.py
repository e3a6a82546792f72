"""Threads and runs as rows (SQLAlchemy 2): written before a request is answered, so a crash loses nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

from services.stores.db import Base, create_tables

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
RunStatus = Literal["pending", "running", "success", "error", "interrupted", "cancelled", "timeout"]
TERMINAL: frozenset[str] = frozenset({"success", "error", "interrupted", "cancelled", "timeout"})


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class ThreadRow(Base):
    __tablename__ = "loom_threads"

    thread_id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    graph_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="idle", index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, onupdate=now)


class RunRow(Base):
    __tablename__ = "loom_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    thread_id: Mapped[str | None] = mapped_column(ForeignKey("loom_threads.thread_id", ondelete="CASCADE"), index=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    assistant_id: Mapped[str] = mapped_column(String(64))
    graph_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    multitask_strategy: Mapped[str] = mapped_column(String(16), default="enqueue")
    kwargs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The run body as accepted (input/command, config, context, stream modes…), replayed on recovery."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, onupdate=now)


def async_url(url: str) -> str:
    """Loom's URLs are sync-style (``sqlite:///x``); the server needs the async drivers."""
    if url.startswith("sqlite:///"):
        return url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


async def open_database(url: str) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(async_url(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    async with engine.begin() as connection:
        await connection.run_sync(create_tables, ThreadRow, RunRow)
    return engine, async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


async def claim_thread(session: AsyncSession, thread_id: str) -> bool:
    """Compare-and-set a thread to busy; False when another run already holds it."""
    result = await session.execute(
        update(ThreadRow)
        .where(ThreadRow.thread_id == thread_id, ThreadRow.status != "busy")
        .values(status="busy", updated_at=now())
    )
    return bool(getattr(result, "rowcount", 0))
