"""``checkpointer.ttl`` of the served ``langgraph.json``: threads left alone for ``default_ttl`` minutes are deleted.

Read as langgraph-api documents it: ``{"strategy": "delete", "default_ttl": <minutes>, "sweep_interval_minutes":
<minutes>, "sweep_limit": <threads per pass>}`` (minutes may be fractions). A thread whose row was not updated
(created, a run finished, state written, metadata patched) for ``default_ttl`` minutes loses what
``DELETE /threads/{id}`` removes: its row with its runs and crons (the foreign keys cascade), its checkpoints
and its artifacts. A thread with a pending or running run is never taken.

Every process that runs workers sweeps, with no leader: one transaction picks expired threads (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so a thread a run is being created on, or another sweeper holds, is skipped; SQLite
runs each transaction alone) and deletes them with a DELETE that repeats the conditions, read again under those
locks. So a thread is deleted once however many processes sweep, and a run committed meanwhile keeps its thread.
A bad entry stops the server at start with a message naming it (``ConfigError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import ColumnElement, and_, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from loom.settings import Settings
from loom.threads import public_thread_id
from server.db import RunRow, ThreadRow, now
from server.engine.queue import UNFINISHED
from server.registry import ConfigError, config_section
from services.paths import remove_thread_artifacts

log = logging.getLogger("loom.server")

KEYS = ("default_ttl", "strategy", "sweep_interval_minutes", "sweep_limit")
MAX_MINUTES = 1e8
"""About 190 years: beyond it a ``timedelta`` overflows."""


@dataclass(frozen=True)
class ThreadTTL:
    minutes: float
    sweep_minutes: float = 5.0
    """langgraph-api's default interval ("typically ~5 minutes")."""
    limit: int = 1000
    """Threads deleted per pass (langgraph-cli's documented default); a full pass is followed by another at once."""


def thread_ttl() -> ThreadTTL | None:
    """The served project's ``checkpointer.ttl``, checked; call it off the event loop (a first read opens the file)."""
    return parse_ttl(config_section("checkpointer").get("ttl"))


def parse_ttl(ttl: Any) -> ThreadTTL | None:
    """None without a ``default_ttl`` (langgraph-api then keeps threads); a ``ConfigError`` naming a bad entry."""
    if ttl is None:
        return None
    if not isinstance(ttl, dict):
        raise ConfigError(f"checkpointer.ttl: an object with {', '.join(KEYS)}")
    for key in ttl:
        if key not in KEYS:
            raise ConfigError(f"checkpointer.ttl.{key}: unknown; use one of {list(KEYS)}")
    strategy = ttl.get("strategy", "delete")
    if strategy != "delete":
        raise ConfigError(f"checkpointer.ttl.strategy: {strategy!r} is not supported; Loom deletes threads ('delete')")
    minutes = _number(ttl, "default_ttl")
    if minutes is None:
        return None
    found = ThreadTTL(minutes)
    sweep = _number(ttl, "sweep_interval_minutes") or found.sweep_minutes
    limit = _number(ttl, "sweep_limit", integer=True) or found.limit
    return ThreadTTL(minutes, sweep, int(limit))


def _number(ttl: dict[str, Any], key: str, integer: bool = False) -> float | None:
    value = ttl.get(key)
    if value is None:
        return None
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (0 < value <= MAX_MINUTES):
        wanted = "positive integer" if integer else "positive number of minutes"
        raise ConfigError(f"checkpointer.ttl.{key}: {value!r} is not a {wanted} (at most {MAX_MINUTES:.0e})")
    return float(value)


@contextlib.asynccontextmanager
async def sweeping(
    ttl: ThreadTTL | None,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    checkpointer: BaseCheckpointSaver[str],
) -> AsyncIterator[None]:
    """Sweeps every ``ttl.sweep_minutes`` while the block runs (processes that run workers); nothing without a TTL."""
    if ttl is None:
        yield
        return
    task = asyncio.create_task(_sweep_forever(ttl, settings, sessions, checkpointer), name="loom-thread-ttl")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _sweep_forever(
    ttl: ThreadTTL,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    checkpointer: BaseCheckpointSaver[str],
) -> None:
    while True:
        swept: list[str] = []
        try:
            swept = await sweep(ttl, settings, sessions, checkpointer)
        except Exception:
            log.exception("checkpointer.ttl: sweeping expired threads failed; trying again next interval")
        if swept:
            log.info("checkpointer.ttl: deleted %d threads idle for %s minutes", len(swept), ttl.minutes)
        if len(swept) < ttl.limit:
            await asyncio.sleep(ttl.sweep_minutes * 60)  # the sweep's timer, not synchronisation


async def sweep(
    ttl: ThreadTTL,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    checkpointer: BaseCheckpointSaver[str],
) -> list[str]:
    """One pass: the keys of the expired threads it deleted, checkpoints and artifacts included."""
    async with sessions.begin() as session:
        expired = _expired(ttl)
        pick = select(ThreadRow.thread_id).where(expired).order_by(ThreadRow.updated_at).limit(ttl.limit)
        if session.get_bind().dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        keys = list((await session.scalars(pick)).all())
        if not keys:
            return []
        gone = await session.execute(
            delete(ThreadRow)
            .where(ThreadRow.thread_id.in_(keys), expired)  # read again under the locks: a new run keeps it
            .returning(ThreadRow.thread_id, ThreadRow.owner)
            .execution_options(synchronize_session=False)
        )
        deleted = [(key, owner) for key, owner in gone.all()]
    for key, owner in deleted:  # after the commit, as DELETE /threads/{id} does
        await checkpointer.adelete_thread(key)
        await asyncio.to_thread(remove_thread_artifacts, settings, owner, public_thread_id(key))
    return [key for key, _ in deleted]


def _expired(ttl: ThreadTTL) -> ColumnElement[bool]:
    unfinished = exists().where(RunRow.thread_id == ThreadRow.thread_id, RunRow.status.in_(UNFINISHED))
    return and_(ThreadRow.updated_at < now() - timedelta(minutes=ttl.minutes), ~unfinished)
