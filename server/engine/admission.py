"""Admission: a prepared run stored in one transaction, with capacity and the multitask strategy decided there.

``admit`` is the engine's door for a new run. Before the transaction it reads the thread's checkpoints for a
refusal (``preparation.refusal``) and reserves a worker slot when one is free; in the transaction
(``Admission.admit``) it takes the admission lock, finds or creates the thread, applies the thread's
multitask rule, checks capacity (``queue.admit``), and inserts the run, already claimed when a slot was
reserved and the thread is idle; after commit the manager starts it here or wakes the workers
(``RunManager.submitted``). A request gets a committed run or a 4xx, never both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from loom.threads import thread_key, thread_keys
from server.auth import Caller, matches
from server.data.assistants import AssistantRow, run_metadata
from server.db import RunRow, ThreadRow, ThreadStatus, insert_row, new_id, now, transaction
from server.engine import queue
from server.engine.manager import RunManager
from server.engine.preparation import PreparedRun, refusal
from server.errors import ApiError, not_found
from server.observability import telemetry
from server.schemas import RunCreate

MAX_THREAD_ID = 64


async def admit(
    manager: RunManager, caller: Caller, thread_id: str | None, run: PreparedRun, idempotency_key: str | None
) -> RunRow:
    """Authorize, admit and store a prepared run in one transaction; the row is committed before this returns.

    Args:
        manager: the run manager, whose database, graphs, capacity and worker slots admission uses.
        caller: who asks; the project's auth handler (``threads``, ``create_run``) may refuse or filter.
        thread_id: the thread's public id; None for a stateless run (a new ephemeral thread).
        run: the request as ``preparation.prepare`` checked it.
        idempotency_key: a key the caller sent; the same key answers the run it created first.

    Returns:
        The run as committed (``pending``, or ``running`` when claimed here in the same transaction).

    Raises:
        ApiError: 403 (auth), 404 (thread, checkpoint), 409 (busy, interrupted, nothing to resume, graph
            mismatch), 422 (thread id), 429 (queue full): nothing is stored then.
    """
    body = run.body
    asked = {"thread_id": thread_id, "assistant_id": body.assistant_id, "metadata": dict(body.metadata or {})}
    filters = await caller.authorize("threads", "create_run", asked)
    # the worker continues the trace and acts as the caller the server authenticated
    kwargs = {**run.kwargs(thread_id is None), **telemetry.traceparent(), "auth_user": caller.user.dict()}
    admission = Admission(
        run=run,
        thread_id=thread_id,
        key=thread_key(run.user, thread_id or new_id()),
        asked=asked,
        filters=filters,
        kwargs=kwargs,
        idempotency_key=idempotency_key,
        capacity=manager.capacity(),
        per_user=manager.settings.user_max_unfinished_runs,
        lease=manager.lease,
    )
    # The thread's checkpoint is read before the transaction, so the database is not held during it; the
    # verdict counts only once the transaction has shown the thread is the caller's and idle. A stateless
    # run's new thread has no checkpoint: only a resume or a checkpoint id can be refused there.
    if thread_id or body.command or body.resolved_checkpoint_id():
        admission.verdict = await refusal(manager.graphs[run.graph_id], admission.key, body)
    with manager.slot_guard() as slot:
        async with manager.creating(admission.key if thread_id else None):
            admission.free_slot = slot.take()
            # A client that goes away mid-request cannot stop the transaction on the database thread; shielded,
            # a run it committed is also announced (or started here) instead of waiting for its lease to lapse.
            return await asyncio.shield(_admit_and_announce(manager, admission))


async def _admit_and_announce(manager: RunManager, admission: Admission) -> RunRow:
    try:
        run, replaced, new = await transaction(manager.sessions, admission.admit)
    except StoredUnderOwnId as legacy:  # a thread stored before keys: checked again under its own id
        admission.key = legacy.thread_id
        graph = manager.graphs[admission.run.graph_id]
        admission.verdict = await refusal(graph, legacy.thread_id, admission.run.body)
        run, replaced, new = await transaction(manager.sessions, admission.admit)
    if new:
        await manager.submitted(run, replaced, direct=run.lease_owner is not None)
    return run


class StoredUnderOwnId(Exception):
    """The run's thread predates per-owner keys; its checkpoint is read under its bare id, then admission retried."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id


@dataclass
class Admission:
    """One run request, checked and stored by ``admit`` in one database transaction (sync: ``server.db``)."""

    run: PreparedRun
    thread_id: str | None
    """The public id the request names; None for a stateless run (its thread is made here, ephemeral)."""
    key: str
    """The stored thread's key, whose checkpoint ``verdict`` was read from."""
    asked: dict[str, Any]
    filters: dict[str, Any]
    kwargs: dict[str, Any]
    idempotency_key: str | None
    capacity: int
    """Accepted-but-unfinished runs allowed (``RunManager.capacity``)."""
    per_user: int | None
    """Of which one user's (``LOOM_USER_MAX_UNFINISHED_RUNS``)."""
    lease: Callable[[RunRow], None]
    """Marks a run claimed by this process's worker (``RunManager.lease``)."""
    verdict: ApiError | None = None
    free_slot: bool = False
    """A worker slot here is reserved: an idle thread's run is claimed in the same transaction, no queue hop."""

    @property
    def user(self) -> str:
        return self.run.user

    @property
    def body(self) -> RunCreate:
        return self.run.body

    @property
    def assistant(self) -> AssistantRow:
        return self.run.assistant

    def admit(self, session: Session) -> tuple[RunRow, queue.Replaced | None, bool]:
        """(run, what it replaced, whether it is new): the run committed, or an ApiError and nothing stored.

        Plain statements (``server.db``) but for the rare thread with runs in flight, whose runs are loaded."""
        body = self.body
        queue.lock_admission(session)
        if self.idempotency_key and (existing := _by_key(session, self.user, self.idempotency_key)):
            return existing, None, False
        thread = self._thread(session)
        if thread.thread_id != self.key:
            raise StoredUnderOwnId(thread.thread_id)
        active = [] if thread.new else queue.inflight(session, thread.thread_id)
        if active and body.multitask_strategy == "reject":
            raise ApiError(409, "thread_busy", "the thread has an active run (multitask_strategy=reject)")
        if active and body.command is not None and body.command.resume is not None:
            message = "a run is active on this thread; resume once it has ended with an interrupt"
            raise ApiError(409, "thread_busy", message)
        # a queued run meets the thread as the runs before it leave it, but no later run makes a missing
        # checkpoint appear (its ids are new): that verdict holds even behind them
        if self.verdict is not None and (not active or self.verdict.status == 404):
            raise self.verdict
        replacing = bool(active) and body.multitask_strategy in ("interrupt", "rollback")
        queue.admit(session, self.capacity, self.user, self.per_user, len(active) if replacing else 0)
        replaced = queue.replace_inflight(active, body.multitask_strategy) if replacing else None
        created = now()
        config_metadata = self.body.config.metadata if self.body.config else None
        layers = (self.assistant.metadata_, thread.metadata, config_metadata, self.asked["metadata"])
        metadata = run_metadata(self.assistant.assistant_id, self.assistant.graph_id, *layers)
        self.kwargs["metadata"] = metadata  # what the graph finds in ``config["metadata"]``
        run = RunRow(
            run_id=new_id(),
            thread_id=thread.thread_id,
            owner=self.user,
            assistant_id=self.assistant.assistant_id,
            graph_id=self.assistant.graph_id,
            multitask_strategy=body.multitask_strategy,
            kwargs=self.kwargs,
            metadata_=metadata,
            idempotency_key=f"{self.user}:{self.idempotency_key}" if self.idempotency_key else None,
            status="pending",
            attempt=1,
            created_at=created,
            updated_at=created,
        )
        if not active and self.free_slot:  # claimed in this transaction
            thread.status = "busy"
            self.lease(run)
        thread.store(session, self.assistant)
        insert_row(session, run)
        return run, replaced, True

    def _thread(self, session: Session) -> AdmittedThread:
        """The run's thread: found (and passing the project's auth filter), or new with the run's metadata."""
        graph_id, thread_id = self.assistant.graph_id, self.thread_id
        if thread_id is None:
            # a search lists it only when kept (``on_completion=keep``); otherwise its checkpoints go with its run
            metadata = {**self.asked["metadata"], **({"ephemeral": True} if self.kwargs["ephemeral"] else {})}
            return AdmittedThread(self.key, self.user, graph_id, "idle", metadata, new=True)
        found = _stored_thread(session, thread_id, self.user)
        if found is not None and not matches(found.metadata, self.filters):
            raise not_found("thread", thread_id)
        if found is None and self.body.if_not_exists != "create":
            raise not_found("thread", thread_id)
        if found is None:
            if len(thread_id) > MAX_THREAD_ID:
                raise ApiError(422, "invalid_request", f"thread_id: at most {MAX_THREAD_ID} characters")
            key = thread_key(self.user, thread_id)
            return AdmittedThread(key, self.user, graph_id, "idle", dict(self.asked["metadata"]), new=True)
        if found.graph_id not in (None, graph_id):
            raise ApiError(409, "graph_mismatch", f"thread {thread_id!r} belongs to graph {found.graph_id!r}")
        return found


THREAD_FOR_UPDATE = (
    select(ThreadRow.thread_id, ThreadRow.owner, ThreadRow.graph_id, ThreadRow.status, ThreadRow.metadata_)
    .where(ThreadRow.thread_id == bindparam("p_thread"))
    .with_for_update()  # PostgreSQL: the row is this transaction's; SQLite's BEGIN IMMEDIATE already is
)
SET_THREAD = (
    update(ThreadRow)
    .where(ThreadRow.thread_id == bindparam("p_thread"))
    .values({ThreadRow.graph_id: bindparam("p_graph"), ThreadRow.status: bindparam("p_status"),
             ThreadRow.metadata_: bindparam("p_metadata")})
)  # fmt: skip
"""Admission's statements on the thread, built once: composing one costs more CPU than SQLite takes to run it."""


@dataclass
class AdmittedThread:
    """The run's thread as admission reads and writes it: a few columns, by plain statements."""

    thread_id: str
    owner: str
    graph_id: str | None
    status: ThreadStatus
    metadata: dict[str, Any]
    new: bool = False

    def store(self, session: Session, assistant: AssistantRow) -> None:
        """Inserted or updated with the run's graph; as langgraph-api, UIs list a graph's threads by these keys."""
        metadata = {**self.metadata, "graph_id": assistant.graph_id, "assistant_id": assistant.assistant_id}
        if self.new:
            created = now()
            thread = ThreadRow(
                thread_id=self.thread_id,
                owner=self.owner,
                graph_id=assistant.graph_id,
                status=self.status,
                metadata_=metadata,
                created_at=created,
                updated_at=created,
            )
            insert_row(session, thread)
            return
        values = {"p_thread": self.thread_id, "p_graph": assistant.graph_id, "p_status": self.status}
        session.connection().execute(SET_THREAD, {**values, "p_metadata": metadata})


def _stored_thread(session: Session, thread_id: str, user: str) -> AdmittedThread | None:
    """``deps.stored_thread`` by a plain statement, locked on PostgreSQL (one creation at a time)."""
    for key in thread_keys(user, thread_id):
        found = session.connection().execute(THREAD_FOR_UPDATE, {"p_thread": key}).first()
        if found is not None and found.owner == user:
            return AdmittedThread(*found)
    return None


def _by_key(session: Session, user: str, key: str) -> RunRow | None:
    return session.scalar(select(RunRow).where(RunRow.idempotency_key == f"{user}:{key}"))
