"""Scheduled runs: each due firing becomes one run row, exactly once however many workers look.

A worker's dispatcher calls :func:`fire_due` every ``run_poll_s``. In one transaction it takes the
crons whose ``next_run_date`` has passed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the
transaction runs alone), inserts one pending run per cron and moves ``next_run_date`` past now. A
second worker finds the date moved (or the row locked) and fires nothing. Fired runs pass the same
admission as requests: while the queue is full a due cron waits, and fires once when there is room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from sqlalchemy import Select, asc, desc, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from loom.threads import thread_key
from server.auth import Filters, matches, metadata_match
from server.data.assistants import AssistantRow, run_metadata
from server.db import CronRow, RunRow, ThreadRow, new_id, now
from server.engine.queue import ADMISSION_LOCK, OWNER_UNFINISHED_COUNT, UNFINISHED_COUNT
from server.errors import ApiError, not_found

CronOrder = Literal["cron_id", "assistant_id", "thread_id", "next_run_date", "created_at", "updated_at"]
FIRINGS_PER_PASS = 100
"""Crons fired per transaction; the rest wait for the next pass."""


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiError(422, "invalid_timezone", f"timezone: unknown IANA zone {name!r}") from exc


def next_fire(schedule: str, timezone: str | None, after: datetime) -> datetime:
    """The first time after ``after`` that ``schedule`` names (5 fields, or 6 with seconds last)."""
    if not croniter.is_valid(schedule):
        raise ApiError(422, "invalid_schedule", f"schedule: {schedule!r} is not a cron expression")
    local = after.astimezone(zone(timezone))
    try:
        fire: datetime = croniter(schedule, local).get_next(datetime)
    except CroniterError as exc:  # valid fields that name no date, e.g. 30 February
        raise ApiError(422, "invalid_schedule", f"schedule: {schedule!r} never fires") from exc
    return fire


# the schedule as stored ---------------------------------------------------------------------------
async def store(sessions: async_sessionmaker[AsyncSession], cron: CronRow) -> None:
    """Insert a new cron; committed when this returns."""
    async with sessions.begin() as session:
        session.add(cron)


async def remove(sessions: async_sessionmaker[AsyncSession], cron_id: str, owner: str, filters: Filters) -> None:
    """Delete ``owner``'s cron ``cron_id``; 404 (ApiError) if it is another's, filtered out, or unknown."""
    async with sessions.begin() as session:
        await session.delete(await _owned(session, cron_id, owner, filters))


async def find(sessions: async_sessionmaker[AsyncSession], cron_id: str, owner: str, filters: Filters) -> CronRow:
    """``owner``'s cron ``cron_id``; 404 (ApiError) if it is another's, filtered out, or unknown."""
    async with sessions() as session:
        return await _owned(session, cron_id, owner, filters)


async def change(
    sessions: async_sessionmaker[AsyncSession], cron_id: str, owner: str, filters: Filters,
    edit: Callable[[CronRow], None],
) -> CronRow:  # fmt: skip
    """``edit`` applied to ``owner``'s cron ``cron_id`` in one transaction (the row locked); 404 as ``find``."""
    async with sessions.begin() as session:
        cron = await _owned(session, cron_id, owner, filters, lock=True)
        edit(cron)
        cron.updated_at = now()
    return cron


async def _owned(session: AsyncSession, cron_id: str, owner: str, filters: Filters, lock: bool = False) -> CronRow:
    cron = await session.get(CronRow, cron_id, with_for_update=lock)
    if cron is None or cron.owner != owner or not matches(cron.metadata_, filters):
        raise not_found("cron", cron_id)
    return cron


async def search(
    sessions: async_sessionmaker[AsyncSession], selection: CronSelection, enabled: bool | None, sort_by: CronOrder,
    descending: bool,
) -> list[CronRow]:  # fmt: skip
    """The crons ``selection`` names, ``enabled`` or not if asked, sorted by ``sort_by``."""
    query = selection.query() if enabled is None else selection.query().where(CronRow.enabled.is_(enabled))
    query = query.order_by((desc if descending else asc)(getattr(CronRow, sort_by)))
    async with sessions() as session:
        return list((await session.scalars(query)).all())


async def count(
    sessions: async_sessionmaker[AsyncSession], selection: CronSelection, metadata: dict[str, Any] | None,
    filters: Filters,
) -> int:  # fmt: skip
    """How many crons ``selection`` names that have the ``metadata`` pairs and pass the project's auth ``filters``."""
    async with sessions() as session:
        if metadata or filters:
            return len(metadata_match((await session.scalars(selection.query())).all(), metadata, filters))
        total = await session.scalar(select(func.count()).select_from(selection.query().subquery()))
    return int(total or 0)


@dataclass(frozen=True)
class CronSelection:
    """One owner's crons, of one assistant (its canonical id) or one thread (its public id) if given."""

    owner: str
    assistant_id: str | None = None
    thread_id: str | None = None

    def query(self) -> Select[CronRow]:
        query = select(CronRow).where(CronRow.owner == self.owner)
        if self.assistant_id:
            query = query.where(CronRow.assistant_id == self.assistant_id)
        if self.thread_id:  # the owner's only: under its key, or its bare id if made before keys
            query = query.where(CronRow.thread_id.in_((thread_key(self.owner, self.thread_id), self.thread_id)))
        return query


# firing ---------------------------------------------------------------------------------------------
async def fire_due(sessions: async_sessionmaker[AsyncSession], capacity: int, per_user: int | None = None) -> list[str]:
    """Insert one run for every cron due now while fewer than ``capacity`` runs are unfinished (and, with
    ``per_user``, fewer than that many of its owner's: the others' crons still fire); answers their ids."""
    async with sessions.begin() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        moment = now()
        query = (
            select(CronRow)
            .where(CronRow.enabled.is_(True), CronRow.next_run_date <= moment)
            .order_by(CronRow.next_run_date)
            .limit(FIRINGS_PER_PASS)
        )
        due = (await session.scalars(query.with_for_update(skip_locked=True) if postgres else query)).all()
        if not due:  # the usual pass: neither admission's lock nor its count
            return []
        if postgres:  # counted and inserted as one admission
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMISSION_LOCK})
        unfinished = await session.scalar(UNFINISHED_COUNT) or 0
        fired: list[str] = []
        for cron in due:
            if cron.end_time is not None and cron.end_time <= moment:
                cron.enabled, cron.next_run_date = False, None
                continue
            if unfinished + len(fired) >= capacity:  # full: this cron and the rest stay due
                break
            if per_user is not None and await _owner_unfinished(session, cron.owner) >= per_user:
                continue  # its owner's share is full: it stays due
            scheduled = cron.next_run_date
            fired.append(await _insert_run(session, cron, scheduled))
            try:  # a time zone's first use reads its file from disk: off the event loop
                cron.next_run_date = await asyncio.to_thread(next_fire, cron.schedule, cron.timezone, moment)
            except ApiError:  # no later date: this was its last firing
                cron.enabled, cron.next_run_date = False, None
        return fired


async def _owner_unfinished(session: AsyncSession, owner: str) -> int:
    """Counted after autoflush, so the runs this pass fired for ``owner`` count too."""
    return await session.scalar(OWNER_UNFINISHED_COUNT, {"p_owner": owner}) or 0


async def _insert_run(session: AsyncSession, cron: CronRow, scheduled: datetime | None) -> str:
    thread_id = cron.thread_id
    kwargs = dict(cron.payload.get("kwargs") or {})
    thread = await session.get(ThreadRow, thread_id) if thread_id else None
    if thread_id is None:  # a stateless cron: a new thread per firing
        thread_id = thread_key(cron.owner, new_id())
        kwargs["ephemeral"] = cron.on_run_completed != "keep"
        listed = {"ephemeral": True} if kwargs["ephemeral"] else {}  # a search shows it only if kept
        session.add(ThreadRow(thread_id=thread_id, owner=cron.owner, graph_id=cron.graph_id, metadata_=listed))
    assistant = await session.get(AssistantRow, cron.assistant_id)
    firing = {**cron.metadata_, "cron_id": cron.cron_id, "scheduled_at": scheduled.isoformat() if scheduled else None}
    assistant_metadata = assistant.metadata_ if assistant else None
    thread_metadata = thread.metadata_ if thread else None
    config_metadata = (kwargs.get("config") or {}).get("metadata")
    kwargs["metadata"] = run_metadata(
        cron.assistant_id, cron.graph_id, assistant_metadata, thread_metadata, config_metadata, firing
    )
    run = RunRow(
        run_id=new_id(),
        thread_id=thread_id,
        owner=cron.owner,
        assistant_id=cron.assistant_id,
        graph_id=cron.graph_id,
        status="pending",
        attempt=1,
        multitask_strategy=cron.payload.get("multitask_strategy") or "enqueue",
        kwargs=kwargs,
        metadata_=kwargs["metadata"],
        created_at=now(),
    )
    await session.flush()
    session.add(run)
    return run.run_id
