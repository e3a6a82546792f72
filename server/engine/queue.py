"""The run queue is the runs table: admission, claims, leases and cancellation are database transactions.

No process holds the truth about a run in memory. A run is admitted in the transaction that inserts
it (``server.engine.admission``, which uses this module's lock, capacity check and replacement of the
thread's runs in flight); a worker claims the oldest pending
run of each idle thread and marks thread and run in one transaction; while it runs, the worker renews
a lease; a run whose lease lapsed (its worker died) goes back to pending with ``attempt + 1``.

PostgreSQL: admission is serialised by a transaction-scoped advisory lock, claims lock thread rows
``FOR UPDATE SKIP LOCKED`` so concurrent workers never wait on each other nor take one thread twice.
SQLite: every transaction is ``BEGIN IMMEDIATE`` on one connection (see ``server.db``), so each of
these transactions runs alone.

Each transaction is plain sync code run by ``server.db.transaction``: on SQLite in one trip to the
connection's thread, on PostgreSQL on the async driver.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import JSON, Select, and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, aliased

from server.db import RunRow, RunStatus, ThreadRow, ThreadStatus, now, transaction
from server.errors import ApiError

UNFINISHED: tuple[RunStatus, ...] = ("pending", "running")
UNFINISHED_COUNT = select(func.count()).select_from(RunRow).where(RunRow.status.in_(UNFINISHED))
"""Accepted-but-unfinished runs, every thread: what admission holds against its capacity."""
OWNER_UNFINISHED_COUNT = UNFINISHED_COUNT.where(RunRow.owner == bindparam("p_owner"))
"""One user's share of them (``LOOM_USER_MAX_UNFINISHED_RUNS``)."""
ADMISSION_LOCK = 0x4C4F4F4D  # "LOOM": the advisory lock that serialises run admission on PostgreSQL


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# admission ----------------------------------------------------------------------------------------
_ANY_INFLIGHT = (
    select(RunRow.run_id).where(RunRow.thread_id == bindparam("p_thread"), RunRow.status.in_(UNFINISHED)).limit(1)
)


def inflight(session: Session, thread_id: str) -> list[RunRow]:
    """Runs accepted on the thread and not finished, oldest first (the running one, then the queue).

    Usually there are none: a plain query says so first, without the ORM's cost of loading entities."""
    if session.connection().scalar(_ANY_INFLIGHT, {"p_thread": thread_id}) is None:
        return []
    query = (
        select(RunRow)
        .where(RunRow.thread_id == thread_id, RunRow.status.in_(UNFINISHED))
        .order_by(RunRow.created_at, RunRow.run_id)
    )
    return list(session.scalars(query).all())


def lock_admission(session: Session) -> None:
    """PostgreSQL: one admission at a time, from the transaction's first statement, so what it reads first (an
    idempotency key, the thread's runs) is still true when it inserts. SQLite's BEGIN IMMEDIATE already is."""
    if _postgres(session):
        session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMISSION_LOCK})


def admit(session: Session, capacity: int, owner: str, per_user: int | None, replacing: int = 0) -> None:
    """429 unless fewer than ``capacity`` runs are accepted and unfinished (running, queued, or waiting on a thread),
    and, with ``per_user``, fewer than that many of them are ``owner``'s, not counting the ``replacing`` runs the
    new one interrupts or rolls back: one user cannot fill the queue for all, yet can always replace a run.

    Called inside the transaction that inserts the run, after ``lock_admission``: the count and the insert are
    one step.
    """
    unfinished = session.connection().scalar(UNFINISHED_COUNT)
    if (unfinished or 0) >= capacity:
        raise ApiError(429, "queue_full", "the run queue is full; retry later", headers={"Retry-After": "2"})
    if per_user is None:
        return
    if (session.connection().scalar(OWNER_UNFINISHED_COUNT, {"p_owner": owner}) or 0) - replacing >= per_user:
        message = f"you have {per_user} unfinished runs, the most one user may have queued; retry when one ends"
        raise ApiError(429, "user_queue_full", message, headers={"Retry-After": "2"})


@dataclass
class Replaced:
    """What an interrupt/rollback run did to the runs before it, for the caller to announce after commit."""

    cancelled: list[str]
    """Queued runs that never started: now ``cancelled``."""
    stopping: list[str]
    """The running run, asked to stop; the new run waits until its worker has stopped it."""


def replace_inflight(runs: list[RunRow], reason: str) -> Replaced:
    """Interrupt/rollback: queued runs are dropped, the running one is asked to stop (in the caller's transaction)."""
    replaced = Replaced([], [])
    for run in runs:
        if run.status == "pending" and run.attempt == 1:
            run.status, run.updated_at = "cancelled", now()
            replaced.cancelled.append(run.run_id)
        else:
            run.cancel_requested = reason
            replaced.stopping.append(run.run_id)
    return replaced


# claims and leases --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _claim_query(postgres: bool, limit: int) -> Select[str, str | None]:
    """Built once per shape: composing it costs more CPU than running it on SQLite."""
    earlier = aliased(RunRow)
    queued_before = exists().where(
        earlier.thread_id == RunRow.thread_id,
        earlier.status == "pending",
        or_(
            earlier.created_at < RunRow.created_at,
            and_(earlier.created_at == RunRow.created_at, earlier.run_id < RunRow.run_id),
        ),
    )
    query = (
        select(RunRow.run_id, RunRow.thread_id)
        .join(ThreadRow, ThreadRow.thread_id == RunRow.thread_id)
        .where(RunRow.status == "pending", ThreadRow.status != "busy", ~queued_before)
        .order_by(RunRow.created_at)
        .limit(limit)
    )
    return query.with_for_update(of=ThreadRow, skip_locked=True) if postgres else query


async def claim(sessions: async_sessionmaker[AsyncSession], worker: str, limit: int, lease_s: float) -> list[RunRow]:
    """Up to ``limit`` runs for ``worker``: the oldest pending run of each thread that has none running."""
    return await transaction(sessions, functools.partial(_claim, worker=worker, limit=limit, lease_s=lease_s))


_TAKE_THREAD = (
    update(ThreadRow)
    .where(ThreadRow.thread_id == bindparam("p_thread"), ThreadRow.status != "busy")
    .values(status="busy")
)
_TAKE_RUN = (
    update(RunRow)
    .where(RunRow.run_id == bindparam("p_run"), RunRow.status == "pending")
    .values(status="running", lease_owner=bindparam("p_worker"), lease_expires_at=bindparam("p_expires"))
)


def _claim(session: Session, worker: str, limit: int, lease_s: float) -> list[RunRow]:
    connection = session.connection()  # plain statements: no ORM bookkeeping but for the rows returned
    candidates = connection.execute(_claim_query(_postgres(session), limit)).all()
    claimed: list[str] = []
    expires = now() + timedelta(seconds=lease_s)
    for run_id, thread_id in candidates:
        if not _rowcount(connection.execute(_TAKE_THREAD, {"p_thread": thread_id})):
            continue
        connection.execute(_TAKE_RUN, {"p_run": run_id, "p_worker": worker, "p_expires": expires})
        claimed.append(run_id)
    if not claimed:
        return []
    rows = session.scalars(select(RunRow).where(RunRow.run_id.in_(claimed))).all()
    return sorted(rows, key=lambda row: row.created_at)


async def renew(
    sessions: async_sessionmaker[AsyncSession], worker: str, run_ids: list[str], lease_s: float
) -> dict[str, str | None]:
    """Extend the leases ``worker`` still holds; answers run id → cancel request for each run still held."""
    if not run_ids:
        return {}
    return await transaction(sessions, functools.partial(_renew, worker=worker, run_ids=run_ids, lease_s=lease_s))


def _renew(session: Session, worker: str, run_ids: list[str], lease_s: float) -> dict[str, str | None]:
    held = (RunRow.run_id.in_(run_ids), RunRow.lease_owner == worker, RunRow.status == "running")
    connection = session.connection()
    connection.execute(update(RunRow).where(*held).values(lease_expires_at=now() + timedelta(seconds=lease_s)))
    return {
        run_id: reason
        for run_id, reason in connection.execute(select(RunRow.run_id, RunRow.cancel_requested).where(*held)).all()
    }


@dataclass
class Outcome:
    """How a run ended, as ``finish`` records it."""

    status: RunStatus
    error: dict[str, Any] | None
    thread_id: str | None
    thread_status: ThreadStatus
    output: str | None
    """The final values, already JSON."""
    usage: dict[str, Any] | None = None
    """Tokens, model calls and USD by node and model (``server.engine.usage``)."""


@dataclass
class Reaped:
    requeued: list[str]
    ended: list[tuple[str, RunStatus]]
    """(run id, final status) of runs that will not be tried again."""


async def reap(sessions: async_sessionmaker[AsyncSession], max_attempts: int, worker: str | None = None) -> Reaped:
    """Runs whose lease lapsed (or all of ``worker``'s, on a clean stop) go back to pending, attempt + 1.

    A run asked to stop ends ``cancelled``; one that has used ``max_attempts`` ends ``error`` with the reason.
    """
    return await transaction(sessions, functools.partial(_reap, max_attempts=max_attempts, worker=worker))


def _reap(session: Session, max_attempts: int, worker: str | None) -> Reaped:
    condition = RunRow.lease_owner == worker if worker else RunRow.lease_expires_at < now()
    query = select(RunRow).where(RunRow.status == "running", condition)
    if _postgres(session):
        query = query.with_for_update(skip_locked=True)
    reaped = Reaped([], [])
    for lapsed in session.scalars(query).all():
        _release_lease(lapsed, max_attempts, reaped, clean_stop=worker is not None)
        if lapsed.thread_id and (thread := session.get(ThreadRow, lapsed.thread_id)) is not None:
            thread.status = "error" if lapsed.status == "error" else "idle"
            thread.updated_at = now()
    return reaped


def _release_lease(run: RunRow, max_attempts: int, reaped: Reaped, clean_stop: bool) -> None:
    run.lease_owner, run.lease_expires_at, run.updated_at = None, None, now()
    if run.cancel_requested:
        run.status = "interrupted" if run.cancel_requested == "interrupt" else "cancelled"
        reaped.ended.append((run.run_id, run.status))
    elif run.attempt >= max_attempts and not clean_stop:
        run.status = "error"
        message = f"the worker running it was lost {run.attempt} times (run_max_attempts={max_attempts})"
        run.error = {"error": "WorkerLost", "message": message}
        reaped.ended.append((run.run_id, run.status))
    else:
        run.status, run.attempt = "pending", run.attempt + 1
        reaped.requeued.append(run.run_id)


# ending ---------------------------------------------------------------------------------------------
async def finish(
    sessions: async_sessionmaker[AsyncSession], worker: str, run_id: str, outcome: Outcome
) -> Literal["lost", "idle", "queued"]:
    """Record the outcome and free the thread in one transaction: ``"lost"`` if the lease was lost meanwhile,
    else whether runs are queued on the thread (a worker should look for work now)."""
    return await transaction(sessions, functools.partial(_finish, worker=worker, run_id=run_id, outcome=outcome))


_END_RUN = (
    update(RunRow)
    .where(RunRow.run_id == bindparam("p_run"), RunRow.status == "running", RunRow.lease_owner == bindparam("p_worker"))
    .values(
        status=bindparam("p_status"),
        error=bindparam("p_error", type_=JSON(none_as_null=True)),
        output=bindparam("p_output"),
        usage=bindparam("p_usage", type_=JSON(none_as_null=True)),
        lease_owner=None,
        lease_expires_at=None,
    )
)
_FREE_THREAD = (
    update(ThreadRow)
    .where(ThreadRow.thread_id == bindparam("p_thread"))
    .values(status=bindparam("p_status"))
    .returning(exists().where(RunRow.thread_id == bindparam("p_thread"), RunRow.status == "pending"))
)
"""Whether runs are queued on the thread, asked in the same statement: one round trip fewer per run.

Both statements are built once: composing one costs more CPU than SQLite takes to run it."""


def _finish(session: Session, worker: str, run_id: str, outcome: Outcome) -> Literal["lost", "idle", "queued"]:
    """Plain UPDATEs, the lease checked in the first's WHERE: no row is read back or loaded into the ORM."""
    connection = session.connection()
    ended = connection.execute(
        _END_RUN,
        {
            "p_run": run_id,
            "p_worker": worker,
            "p_status": outcome.status,
            "p_error": outcome.error,
            "p_output": outcome.output,
            "p_usage": outcome.usage,
        },
    )
    if not _rowcount(ended):
        return "lost"
    if not outcome.thread_id:
        return "idle"
    freed = connection.execute(_FREE_THREAD, {"p_thread": outcome.thread_id, "p_status": outcome.thread_status})
    return "queued" if freed.scalar() else "idle"


async def request_cancel(
    sessions: async_sessionmaker[AsyncSession], run_id: str, reason: str
) -> Literal["cancelled", "stopping"] | None:
    """Cancel a queued run at once, or ask the worker of a running one to stop.

    Answers ``"cancelled"`` (it never started), ``"stopping"`` (its worker will stop it) or None (already over).
    """
    return await transaction(sessions, functools.partial(_request_cancel, run_id=run_id, reason=reason))


def _request_cancel(session: Session, run_id: str, reason: str) -> Literal["cancelled", "stopping"] | None:
    found = session.get(RunRow, run_id, with_for_update=True)
    if found is None or found.status not in UNFINISHED:
        return None
    if found.status == "pending" and found.attempt == 1:
        found.status, found.updated_at = "cancelled", now()
        return "cancelled"
    found.cancel_requested = reason
    if found.status == "pending":  # between attempts: nothing to stop, end it here
        found.status, found.updated_at = "cancelled", now()
        return "cancelled"
    return "stopping"


async def unfinished_counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        query = select(RunRow.status, func.count()).where(RunRow.status.in_(UNFINISHED)).group_by(RunRow.status)
        counts = {status: int(count) for status, count in (await session.execute(query)).all()}
    return {status: counts.get(status, 0) for status in UNFINISHED}


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
