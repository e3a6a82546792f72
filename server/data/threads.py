"""Threads as rows (``server.db.ThreadRow``): lookups by the caller's id, creation, search, changes, deletion.

A thread is stored under its key (``loom.threads.thread_key``), scoped by its owner; threads made before
keys keep their bare id. Another user's thread with the same id is unknown, exactly like an id nobody
created (404), and so is one the project's auth filter leaves out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy import asc, desc, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from loom.threads import is_key, thread_key, thread_keys
from server.auth import Filters, matches, metadata_match
from server.db import RunRow, ThreadRow, insert_row, new_id, now, transaction
from server.errors import ApiError, not_found

Sessions = async_sessionmaker[AsyncSession]


def stored_thread(session: Session, thread_id: str, user: str, for_update: bool = False) -> ThreadRow | None:
    """``user``'s thread ``thread_id`` (a public id), stored under its key or, made before keys, its bare id."""
    for key in thread_keys(user, thread_id):
        thread = session.get(ThreadRow, key, with_for_update=for_update)
        if thread is not None and thread.owner == user:
            return thread
    return None


async def find_thread(session: AsyncSession, thread_id: str, user: str, for_update: bool = False) -> ThreadRow | None:
    """``stored_thread`` in an async session."""
    return await session.run_sync(stored_thread, thread_id, user, for_update)


async def owned_thread(session: AsyncSession, thread_id: str, user: str) -> ThreadRow:
    """Another user's thread with the same id is unknown, exactly like an id nobody created."""
    thread = await find_thread(session, thread_id, user)
    if thread is None:
        raise not_found("thread", thread_id)
    return thread


async def allowed_thread(session: AsyncSession, thread_id: str, user: str, filters: Filters) -> ThreadRow:
    """``user``'s thread, if its metadata passes the project's auth ``filters``; else 404."""
    thread = await owned_thread(session, thread_id, user)
    if not matches(thread.metadata_, filters):
        raise not_found("thread", thread_id)
    return thread


async def read(sessions: Sessions, thread_id: str, user: str, filters: Filters) -> ThreadRow:
    """``allowed_thread`` in a session of its own."""
    async with sessions() as session:
        return await allowed_thread(session, thread_id, user, filters)


async def by_key(sessions: Sessions, key: str) -> ThreadRow | None:
    """The thread stored under ``key``, whoever owns it (the caller checks the owner)."""
    async with sessions() as session:
        return await session.get(ThreadRow, key)


async def create(
    sessions: Sessions,
    user: str,
    thread_id: str | None,
    graph_id: str | None,
    metadata: dict[str, Any],
    if_exists: Literal["raise", "do_nothing"],
) -> tuple[ThreadRow, bool]:
    """A new idle thread of ``user``'s, and True; or with ``if_exists="do_nothing"`` their thread of that id,
    and False (``raise``: 409 ``thread_exists``). Ids are per owner: an id another user holds is free."""

    def create_or_find(session: Session) -> tuple[ThreadRow, bool]:
        if thread_id and (existing := stored_thread(session, thread_id, user)) is not None:
            if if_exists == "raise":
                raise ApiError(409, "thread_exists", f"thread {thread_id!r} already exists")
            return existing, False
        key, created = thread_key(user, thread_id or new_id()), now()
        thread = ThreadRow(thread_id=key, owner=user, graph_id=graph_id, status="idle", metadata_=metadata,
                           created_at=created, updated_at=created)  # fmt: skip
        insert_row(session, thread)
        return thread, True

    return await transaction(sessions, create_or_find)


async def matching(
    sessions: Sessions,
    user: str,
    filters: Filters,
    status: str | None = None,
    metadata: dict[str, Any] | None = None,
    ids: Sequence[str] | None = None,
    order: tuple[str, str] | None = None,
) -> list[ThreadRow]:
    """``user``'s threads with this status, among these ids, with these metadata pairs, that pass the auth
    ``filters``; ``order`` is (column, asc|desc), ``state_updated_at`` read as ``updated_at``, ties by id.

    A stateless run's own thread (``ephemeral``) is left out unless ``metadata`` names ``ephemeral``: langgraph-api
    deletes it with its run; Loom keeps the row, under which the run's outcome is stored, without checkpoints."""
    query = select(ThreadRow).where(ThreadRow.owner == user)
    if status:
        query = query.where(ThreadRow.status == status)
    if ids:  # the caller's keys, and bare ids of threads made before keys
        keys = [thread_key(user, i) for i in ids] + [i for i in ids if not is_key(i)]
        query = query.where(ThreadRow.thread_id.in_(keys))
    if order is not None:
        direction = desc if order[1] == "desc" else asc
        column = ThreadRow.updated_at if order[0] == "state_updated_at" else getattr(ThreadRow, order[0])
        query = query.order_by(direction(column), direction(ThreadRow.thread_id))
    async with sessions() as session:
        rows = (await session.scalars(query)).all()
    if "ephemeral" not in (metadata or {}):
        rows = [row for row in rows if not row.metadata_.get("ephemeral")]
    return metadata_match(rows, metadata, filters)


async def merge_metadata(
    sessions: Sessions, thread_id: str, user: str, filters: Filters, metadata: dict[str, Any]
) -> ThreadRow:
    """The thread with ``metadata`` merged into its own (a key sent wins)."""
    async with sessions.begin() as session:
        thread = await allowed_thread(session, thread_id, user, filters)
        thread.metadata_ = {**thread.metadata_, **metadata}
    return thread


async def add_copy(sessions: Sessions, source: ThreadRow, user: str, metadata: dict[str, Any]) -> ThreadRow:
    """A new thread of ``user``'s on ``source``'s graph, interrupted if it was, else idle (no checkpoints yet)."""
    status = "interrupted" if source.status == "interrupted" else "idle"
    async with sessions.begin() as session:
        thread = ThreadRow(thread_id=thread_key(user, new_id()), owner=user, graph_id=source.graph_id,
                           metadata_=metadata, status=status)  # fmt: skip
        session.add(thread)
    return thread


async def delete(sessions: Sessions, thread_id: str, user: str) -> None:
    """Deletes ``user``'s thread row; its runs and crons go with it (``ON DELETE CASCADE``)."""
    async with sessions.begin() as session:
        await session.delete(await owned_thread(session, thread_id, user))


@asynccontextmanager
async def changing(sessions: Sessions, thread_id: str, user: str) -> AsyncIterator[ThreadRow]:
    """``user``'s thread in a transaction around a change to its state; ``updated_at`` is set when it commits."""
    async with sessions.begin() as session:
        thread = await owned_thread(session, thread_id, user)
        yield thread
        thread.updated_at = now()


async def latest_run(sessions: Sessions, key: str, first: bool = False) -> RunRow | None:
    """The newest run on the thread stored under ``key`` (``first``: the oldest)."""
    order = RunRow.created_at.asc() if first else RunRow.created_at.desc()
    async with sessions() as session:
        return await session.scalar(select(RunRow).where(RunRow.thread_id == key).order_by(order).limit(1))


async def run_usages(sessions: Sessions, thread_id: str, user: str, filters: Filters) -> list[dict[str, Any]]:
    """The usage each of the thread's runs recorded (written when a run ends; runs without one left out)."""
    async with sessions() as session:
        thread = await allowed_thread(session, thread_id, user, filters)
        usages = (await session.scalars(select(RunRow.usage).where(RunRow.thread_id == thread.thread_id))).all()
    return [usage for usage in usages if usage]
