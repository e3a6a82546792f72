"""The run manager: workers that claim runs from the database, execute them, and announce them on the bus.

A run is a row (see ``server.engine.queue``): accepted in one transaction with its admission check, claimed
by a worker in another, kept under a renewed lease while it runs, finished in a third. Workers execute
with ``graph.astream`` on the shared checkpointer with ``durability="sync"``: every finished step is on
disk before the next starts, so a run taken over after its worker died resumes from its last
checkpoint and finished nodes do not run again. Events and cancel signals travel on the bus
(``server.engine.bus``): in process when embedded, Redis in scale mode; the code path is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, get_args

from langchain_core.messages import BaseMessage, message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphRecursionError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from loom.settings import Settings
from nodes.models import retry_budget
from server.db import TERMINAL, RunRow, RunStatus, ThreadStatus, now, transaction
from server.engine import crons, queue
from server.engine.attempt import RunAttempt
from server.engine.bus import BusUnavailable, EventBus
from server.engine.context import own_context_schema, validate_context
from server.engine.streams import Event, dumps
from server.engine.usage import BudgetExceeded, UsageMeter, run_limits
from server.engine.wire import CONFIG_MODES, checkpoint_of, debug_checkpoint, interrupt_views, output_values, public_ids
from server.errors import ApiError
from server.observability import logs, observe
from server.store_scope import with_caller_store
from state.common import Permission, RunContext

log = logging.getLogger("loom.server")

GRAPH_MODES = {"values", "updates", "custom", "debug", "tasks", "checkpoints", "messages"}
REPLACED_WAIT_S = 60.0
"""How long an interrupt/rollback request waits for the run it replaces to stop before answering."""
KEPT_OUTCOMES = 1024
"""Outcomes of runs this process finished, kept for a waiter here (``RunManager.recorded``); oldest go first."""


class QueuedRunRefused(Exception):
    """A queued run cannot start as it was asked: the thread changed while it waited. An outcome, not a fault."""


class ThreadInterrupted(QueuedRunRefused):
    """Raised before a queued run starts on a thread that now waits for a human."""


class CheckpointGone(QueuedRunRefused):
    """Raised before a queued run starts from a checkpoint that a rollback removed while it waited."""


@dataclass(frozen=True)
class Ending:
    """How an attempt ended, before ``_finish`` reads the thread's state and records it."""

    status: RunStatus
    error: dict[str, Any] | None
    reason: str | None
    """Why it was stopped, if it was (``cancelled``, ``interrupt``, ``rollback``)."""
    meter: UsageMeter | None
    """The attempt's usage meter, once the graph was about to start."""


class SlotGuard:
    def __init__(self, manager: RunManager) -> None:
        self.manager = manager
        self.taken = 0

    def take(self) -> bool:
        if self.taken or not self.manager._take_slot():
            return False
        self.taken = 1
        return True


class RunManager:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        graphs: dict[str, CompiledStateGraph[Any, Any, Any, Any]],
        checkpointer: BaseCheckpointSaver[str],
        bus: EventBus,
        per_run: Mapping[str, Callable[..., Awaitable[CompiledStateGraph[Any, Any, Any, Any]]]] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.graphs = graphs
        self.per_run = per_run or {}
        """Graphs whose factory takes a config: rebuilt for each run with the run's config."""
        self.checkpointer = checkpointer
        self.bus = bus
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stoppable: set[str] = set()
        """Runs in their graph phase: a cancel signal stops them; in ``_finish`` they are past stopping."""
        self._reasons: dict[str, str] = {}
        self._lost: set[str] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[bool]] = set()
        self._reserved = 0
        self._backlog = True
        """Runs may be waiting for this worker: a claim filled every free slot or found none free, or a finished
        run's thread has runs queued. Only then does a finishing run wake the dispatcher; otherwise its claim
        would find nothing, and on SQLite that empty transaction took the write lock once per run."""
        self._checked: set[str] = set()
        """Slots promised to runs being inserted as claimed (``take_slot``), not yet started."""
        self._stopping = False
        self._creating: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._outcomes: OrderedDict[str, queue.Outcome] = OrderedDict()

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.bus.start(self._on_signal)
        if self.settings.run_workers:
            self._loops = [
                asyncio.create_task(self._dispatch(), name="loom-dispatch"),
                asyncio.create_task(self._heartbeat(), name="loom-heartbeat"),
            ]

    async def stop(self) -> None:
        """Runs in flight go back to pending (attempt + 1) for the next worker, as after a crash but at once."""
        self._stopping = True
        for task in (*self._loops, *self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks.values(), return_exceptions=True)
        if self.settings.run_workers:
            with contextlib.suppress(Exception):
                await queue.reap(self.sessions, self.settings.run_max_attempts, worker=self.worker_id)
        await self.bus.stop()

    # submission ------------------------------------------------------------------------------
    def capacity(self) -> int:
        """Accepted-but-unfinished runs allowed: the queue plus what one process runs at once."""
        return self.settings.server_queue_size + self.settings.server_concurrency

    @contextlib.contextmanager
    def slot_guard(self) -> Iterator[SlotGuard]:
        """A worker slot reserved by ``take`` for a run inserted as already claimed, released however it ends."""
        guard = SlotGuard(self)
        try:
            yield guard
        finally:
            self._reserved -= guard.taken

    def _take_slot(self) -> bool:
        if not self.settings.run_workers or self._stopping:
            return False
        if len(self._tasks) + self._reserved >= self.settings.server_concurrency:
            return False
        self._reserved += 1
        return True

    def lease(self, run: RunRow) -> None:
        """Mark a run being inserted as claimed by this worker (the thread row is marked busy by the caller)."""
        run.status, run.lease_owner = "running", self.worker_id
        run.lease_expires_at = now() + timedelta(seconds=self.settings.run_lease_s)

    def _start(self, run: RunRow, checked: bool = False) -> None:
        """``checked``: created on an idle thread and started at once, so its creation checks still hold."""
        if checked:
            self._checked.add(run.run_id)
        self._stoppable.add(run.run_id)
        self._tasks[run.run_id] = asyncio.create_task(self._execute(run), name=f"loom-run-{run.run_id}")

    async def submitted(self, run: RunRow, replaced: queue.Replaced | None, direct: bool = False) -> None:
        """After the run's row is committed: start it here (``direct``) or wake workers; stop what it replaces.

        Never raises: the client has a committed run and gets its answer whatever the bus does.
        """
        if direct:
            self._start(run, checked=True)
            return
        try:
            if replaced is not None:
                for run_id in replaced.cancelled:
                    await self._announce_end(run_id, "cancelled")
                for run_id in replaced.stopping:
                    await self.bus.signal(run_id, run.multitask_strategy)
            await self.bus.wake()
            if replaced is not None:
                async with asyncio.timeout(REPLACED_WAIT_S):
                    for run_id in replaced.stopping:
                        await self.wait(run_id)
        except Exception:
            log.exception("announcing run %s failed; workers will still find it", run.run_id)

    @contextlib.asynccontextmanager
    async def creating(self, thread_id: str | None) -> AsyncIterator[None]:
        """Run creation on one thread is serialised in this process (the database decides across processes)."""
        if thread_id is None:
            yield
            return
        lock = self._creating.setdefault(thread_id, asyncio.Lock())
        async with lock:
            yield

    @contextlib.asynccontextmanager
    async def idle_thread(self, lock: str, thread_id: str | None = None) -> AsyncIterator[None]:
        """Holds run creation under ``lock`` (the thread's key) while the state of ``thread_id`` (the stored
        thread, the key unless the thread predates keys) changes outside a run; 409 if a run has it."""
        async with self.creating(lock):
            if await self.active_run(thread_id or lock):
                raise ApiError(409, "thread_busy", "the thread has an active run; cancel or wait for it first")
            yield

    async def active_run(self, thread_id: str) -> str | None:
        """The oldest run queued or running on ``thread_id``, if any."""
        runs = await transaction(self.sessions, functools.partial(queue.inflight, thread_id=thread_id))
        return runs[0].run_id if runs else None

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Stop a run where it is; finished steps stay checkpointed. False if it was not active."""
        outcome = await queue.request_cancel(self.sessions, run_id, reason)
        if outcome == "cancelled":
            await self._announce_end(run_id, "cancelled")
            await self.bus.wake()
        elif outcome == "stopping":
            await self.bus.signal(run_id, reason)
        return outcome is not None

    def cancel_soon(self, run_id: str) -> None:
        """Cancel from code that is itself being cancelled (a dropped client): in a task of its own."""
        task = asyncio.create_task(self.cancel(run_id), name=f"loom-cancel-{run_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def cancel_thread(self, thread_id: str) -> None:
        """Cancel every run queued or running on a thread and wait for them to stop (thread deletion)."""
        runs = await transaction(self.sessions, functools.partial(queue.inflight, thread_id=thread_id))
        for run in runs:
            await self.cancel(run.run_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REPLACED_WAIT_S):
                for run in runs:
                    await self.wait(run.run_id)

    async def _announce_end(self, run_id: str, status: str) -> None:
        await self.bus.publish(run_id, "end", {"status": status, "interrupts": [], "checkpoint": None})
        await self.bus.close(run_id)

    def _on_signal(self, run_id: str, reason: str) -> None:
        if run_id in self._stoppable and (task := self._tasks.get(run_id)) is not None:
            self._reasons[run_id] = reason
            task.cancel()

    # events ----------------------------------------------------------------------------------
    async def events(self, run_id: str, after: int = 0, known_status: str | None = None) -> AsyncIterator[Event]:
        """The run's events after ``after`` until its ``end``; a run that ended where no stream is left gets one,
        and so does a run whose stream cannot be read (Redis down): its end, once the database records it."""
        idle_s = max(self.settings.run_poll_s * 5, 1.0)
        try:
            if known_status in TERMINAL and not await self.bus.has(run_id):
                yield await self._synthetic_end(run_id, after)
                return
            async for event in self.bus.follow(run_id, after, idle_s):
                if event is None:  # quiet: the writer may be gone for good; the database knows
                    status = await self._status(run_id)
                    if status is None or status in TERMINAL:
                        yield await self._synthetic_end(run_id, after, status)
                        return
                    continue
                after = event.seq
                yield event
                if event.name == "end":
                    return
        except BusUnavailable as exc:
            log.warning("events of run %s unreadable (%s); its end is read from the database", run_id, exc)
            while (status := await self._status(run_id)) not in (None, *TERMINAL):
                await asyncio.sleep(idle_s)
            yield await self._synthetic_end(run_id, after, status)

    async def _status(self, run_id: str) -> str | None:
        status: str | None = await transaction(
            self.sessions,
            lambda session: session.connection().scalar(select(RunRow.status).where(RunRow.run_id == run_id)),
        )
        return status

    async def _synthetic_end(self, run_id: str, after: int, status: str | None = None) -> Event:
        status = status or await self._status(run_id) or "cancelled"
        return Event(after + 1, "end", dumps({"status": status, "interrupts": [], "checkpoint": None}))

    async def wait(self, run_id: str, known_status: str | None = None) -> str | None:
        """Until the run has ended; its final status (``known_status``, when the caller has it, saves a query)."""
        last: Event | None = None
        async for last in self.events(run_id, known_status=known_status or await self._status(run_id)):  # noqa: B007
            pass
        if last is None or last.name != "end":
            return None
        status: str | None = json.loads(last.data).get("status")
        return status

    def take_recorded(self, run_id: str) -> queue.Outcome | None:
        """The outcome as this process committed it, if it ran the run, handed over once (it is forgotten here):
        a waiter here reads it without a query."""
        return self._outcomes.pop(run_id, None)

    # workers ---------------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        """Claim runs while slots are free; sleep until woken (new run, finished run) or ``run_poll_s``."""
        next_reap = next_cron = 0.0
        while not self._stopping:
            claimed: list[RunRow] = []
            try:
                if time.monotonic() >= next_reap:
                    await self._reap()
                    next_reap = time.monotonic() + self.settings.run_lease_s / 2
                if time.monotonic() >= next_cron:
                    await crons.fire_due(self.sessions, self.capacity(), self.settings.user_max_unfinished_runs)
                    next_cron = time.monotonic() + self.settings.run_poll_s
                free = self.settings.server_concurrency - len(self._tasks) - self._reserved
                self._backlog = free <= 0
                if free > 0:
                    claimed = await queue.claim(self.sessions, self.worker_id, free, self.settings.run_lease_s)
                    self._backlog = len(claimed) >= free
                for run in claimed:
                    self._start(run)
            except Exception:
                log.exception("claiming runs failed; retrying")
            if not claimed or len(self._tasks) >= self.settings.server_concurrency:
                await self.bus.wait_for_work(self.settings.run_poll_s)

    async def _reap(self) -> None:
        """Runs whose worker died: back to pending, or ended (cancel asked, attempts used up)."""
        reaped = await queue.reap(self.sessions, self.settings.run_max_attempts)
        for run_id in reaped.requeued:
            log.warning("run %s lost its worker; queued again", run_id)
        for run_id, status in reaped.ended:
            await self._announce_end(run_id, status)

    async def _heartbeat(self) -> None:
        """Renew this worker's leases; a cancel asked through the database reaches the run here too."""
        while not self._stopping:
            await asyncio.sleep(self.settings.run_lease_s / 3)  # a timer, not synchronisation
            running = [run_id for run_id in self._tasks if run_id in self._stoppable]
            try:
                held = await queue.renew(self.sessions, self.worker_id, running, self.settings.run_lease_s)
            except Exception:
                log.exception("renewing leases failed")
                continue
            for run_id in running:
                if run_id not in held and run_id in self._stoppable:
                    log.warning("lost the lease on run %s; another worker takes it over", run_id)
                    self._lost.add(run_id)
                    self._on_signal(run_id, "lost")
                elif reason := held.get(run_id):
                    self._on_signal(run_id, reason)

    # execution -------------------------------------------------------------------------------
    async def _execute(self, run: RunRow) -> None:
        with observe.attempt(run, self.worker_id, self.settings):
            await self._attempt(run)

    async def _attempt(self, run: RunRow) -> None:
        """One attempt of ``run``, from its ``metadata`` event to its recorded outcome; never raises but when
        this process stops or lost the run's lease (the run is then another worker's)."""
        run_id = run.run_id
        attempt = RunAttempt.of(run)
        status: RunStatus = "success"
        error: dict[str, Any] | None = None
        reason: str | None = None
        meter: UsageMeter | None = None
        try:
            try:
                if run.cancel_requested:  # asked to stop between attempts
                    raise asyncio.CancelledError
                await self.bus.publish(run_id, "metadata", {"run_id": run_id, "attempt": run.attempt})
                if run.attempt > 1:
                    await self.bus.publish(run_id, "recovered", {"run_id": run_id, "attempt": run.attempt})
                async with asyncio.timeout(self.settings.run_timeout_s):
                    with retry_budget(self.settings.run_retry_budget):
                        await self._refuse_changed_thread(attempt)
                        meter = UsageMeter(self.settings, await run_limits(self.settings, self.sessions, attempt))
                        await self._stream_graph(attempt, meter)
            except asyncio.CancelledError:
                if self._stopping or run_id in self._lost:
                    raise
                self._uncancel()
                reason = self._reasons.get(run_id) or run.cancel_requested
                status = "interrupted" if reason == "interrupt" else "cancelled"
            except TimeoutError:
                message = f"run exceeded {self.settings.run_timeout_s}s"
                status, error = "timeout", {"error": "TimeoutError", "message": message}
            except GraphRecursionError as exc:
                status, error = "error", {"error": "GraphRecursionError", "message": str(exc)}
            except BudgetExceeded as exc:  # refused before a node started: the checkpoint before it stands
                status, error = "error", exc.error
            except QueuedRunRefused as exc:
                log.warning("run %s not started: %s", run_id, exc)
                status, error = "error", {"error": type(exc).__name__, "message": str(exc)}
            except Exception as exc:  # a graph failure ends the run, never the server
                log.exception("run %s failed", run_id)
                status, error = "error", {"error": type(exc).__name__, "message": str(exc)}
            self._stoppable.discard(run_id)
            await self._finish(attempt, Ending(status, error, reason, meter))
        finally:
            self._stoppable.discard(run_id)
            self._checked.discard(run_id)
            self._reasons.pop(run_id, None)
            self._lost.discard(run_id)
            self._tasks.pop(run_id, None)
            if self._backlog and not self._stopping:  # a slot is free for a run that waited for one
                await self.bus.wake()

    @staticmethod
    def _uncancel() -> None:
        """The run was stopped on request: clear the cancellation so recording its outcome can proceed."""
        if (task := asyncio.current_task()) is not None:
            while task.cancelling():
                task.uncancel()

    async def _stream_graph(self, attempt: RunAttempt, meter: UsageMeter) -> None:
        """Run the graph and publish its stream parts as the run's events (``meter`` counts its model calls)."""
        run_id, kwargs = attempt.run_id, attempt.kwargs
        graph = self.graphs[attempt.graph_id]
        config = with_caller_store(run_config(attempt), graph.store, attempt.owner)
        # the meter counts every model call and refuses nodes past the budget; the observer traces and measures
        config["callbacks"] = [meter, *observe.callbacks(attempt, self.settings)]
        async with contextlib.AsyncExitStack() as factory_scope:  # a per-run factory's context ends with the run
            if (rebuild := self.per_run.get(attempt.graph_id)) is not None:
                graph = await rebuild(stack=factory_scope, config=config)
            payload = await self._payload(attempt)
            requested = kwargs.get("stream_mode") or ["values"]
            modes = sorted({"messages" if mode.startswith("messages") else mode for mode in requested} & GRAPH_MODES)
            legacy_messages = LegacyMessages() if "messages" in requested else None
            subgraphs = bool(kwargs.get("stream_subgraphs")) or "events" in requested
            options: dict[str, Any] = {
                # a project's own schema may validate to a falsy value ({}): only graphs without one get RunContext
                "context": validate_context(graph, kwargs.get("context"))
                if own_context_schema(graph) is not None
                else run_context(attempt.owner, kwargs.get("context"), self._granted(attempt.owner, kwargs)),
                "stream_mode": modes or ["values"],  # "events" alone: the graph still streams, its parts are dropped
                "output_keys": graph.output_channels,  # as langgraph-api: values/updates show the output schema only
                # as langgraph-api: only when asked (LangGraph's parts differ with it, e.g. tool message ids)
                "subgraphs": subgraphs,
                "interrupt_before": kwargs.get("interrupt_before"),
                "interrupt_after": kwargs.get("interrupt_after"),
                "durability": kwargs.get("durability") or "sync",
            }
            parts: AsyncIterator[Any]
            if "events" in requested:
                parts = with_events(graph, payload, config, options, run_id)
            else:
                parts = graph.astream(payload, config, **options)  # type: ignore[call-overload]
            async for part in parts:
                ns, mode, chunk = part if subgraphs else ((), *part)
                if (ns and not kwargs.get("stream_subgraphs")) or mode not in (*modes, "events"):
                    continue
                if mode == "debug" and chunk.get("type") == "checkpoint":
                    chunk = {**chunk, "payload": debug_checkpoint(chunk["payload"])}
                suffix = "|" + "|".join(ns) if ns else ""
                if mode == "messages":
                    for name, data in messages_events(chunk, requested, legacy_messages):
                        await self.bus.publish(run_id, name + suffix, data)
                else:
                    await self.bus.publish(run_id, mode + suffix, public_ids(chunk) if mode in CONFIG_MODES else chunk)

    def _granted(self, owner: str, kwargs: Mapping[str, Any]) -> tuple[Permission, ...]:
        """The grants the caller was authenticated with (custom auth's ``permissions``), else the settings'."""
        if (user := kwargs.get("auth_user")) is None:
            return self.settings.granted(owner)
        return tuple(p for p in get_args(Permission) if p in (user.get("permissions") or ()))

    async def _restore_start(self, attempt: RunAttempt) -> None:
        """Rollback: the thread's latest state becomes what it was before this run.

        That is the newest checkpoint older than the run's first (a checkpoint's metadata names its run, and
        checkpoint ids grow with time): the first one's parent, but for a fork, whose first checkpoint descends
        from the checkpoint it forked. Looked up only now: few runs are rolled back.
        """
        thread_id = attempt.thread_id
        thread: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        first = None
        async for saved in self.checkpointer.alist(thread, filter={"run_id": attempt.run_id}):
            first = saved  # newest first: the last one is the run's first
        if first is None:  # the run wrote nothing: the thread is as it was
            return
        before = [saved async for saved in self.checkpointer.alist(thread, before=first.config, limit=1)]
        if not before:  # the run started on an empty thread: all its checkpoints are its own work
            await self.checkpointer.adelete_thread(thread_id or "")
            return
        start = before[0].config["configurable"]["checkpoint_id"]
        config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_id": start}}
        await self.graphs[attempt.graph_id].aupdate_state(config, None, as_node="__copy__")

    async def _refuse_changed_thread(self, attempt: RunAttempt) -> None:
        """A run queued with new input must not silently drop an interrupt raised while it waited, nor start
        from nothing because its checkpoint was rolled back meanwhile. A run started as it was admitted (or
        taken over from a worker that died) is not checked: its thread has not changed since."""
        if attempt.number > 1 or attempt.run_id in self._checked:
            return
        thread_id, kwargs = attempt.thread_id, attempt.kwargs
        if thread_id and (checkpoint_id := kwargs.get("checkpoint_id")):
            at = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
            if await self.checkpointer.aget_tuple(at) is None:  # type: ignore[arg-type]
                raise CheckpointGone(
                    f"checkpoint {checkpoint_id} is no longer in the thread (rolled back while queued)"
                )
            return
        if not thread_id or kwargs.get("input") is None:
            return
        state = await self.graphs[attempt.graph_id].aget_state({"configurable": {"thread_id": thread_id}})
        if state.interrupts:
            raise ThreadInterrupted(
                "the thread is waiting on an interrupt raised after this run was queued; answer it with command.resume"
            )

    async def _payload(self, attempt: RunAttempt) -> Any:
        """What to start the graph with; a recovered run resumes from its own last checkpoint."""
        run_id, thread_id, kwargs = attempt.run_id, attempt.thread_id, attempt.kwargs
        if attempt.number > 1 and thread_id:
            latest = await self.checkpointer.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
            if latest is not None and (latest.metadata or {}).get("run_id") == run_id:
                return None
        if command := kwargs.get("command"):
            return Command(resume=command.get("resume"), update=command.get("update"), goto=command.get("goto") or ())
        return kwargs.get("input")

    async def _finish(self, attempt: RunAttempt, ending: Ending) -> None:
        """Record the outcome and free the thread before telling clients, so their next call finds it idle."""
        run_id, thread_id, status = attempt.run_id, attempt.thread_id, ending.status
        error = logs.scrub(ending.error, self.settings)
        interrupts: list[dict[str, Any]] = []
        checkpoint = output = None
        thread_status: ThreadStatus = "error" if status in ("error", "timeout") else "idle"
        if thread_id and ending.reason == "rollback":
            await self._restore_start(attempt)
        if thread_id:
            graph = self.graphs[attempt.graph_id]
            state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
            interrupts = interrupt_views(state.interrupts)
            checkpoint = checkpoint_of(state.config)
            output = dumps(output_values(graph, state.values, interrupts))
            if status == "success" and (interrupts or state.next):
                status = "interrupted"
            # a pending question outlives any later failure on the thread
            if interrupts or (state.next and status in ("interrupted", "success")):
                thread_status = "interrupted"
        usage = ending.meter.summary() if ending.meter is not None else None
        outcome = queue.Outcome(status, error, thread_id, thread_status, output, usage)
        recorded = await queue.finish(self.sessions, self.worker_id, run_id, outcome)
        if recorded == "lost":
            log.warning("run %s finished after its lease was lost; its new worker records it", run_id)
            return
        self._backlog = self._backlog or recorded == "queued"
        self._outcomes[run_id] = outcome
        if len(self._outcomes) > KEPT_OUTCOMES:
            self._outcomes.popitem(last=False)
        observe.finished(attempt, status, error, self.settings)
        if thread_id and attempt.kwargs.get("ephemeral"):
            await self.checkpointer.adelete_thread(thread_id)
        if error:
            await self.bus.publish(run_id, "error", error)
        await self.bus.publish(run_id, "end", {"status": status, "interrupts": interrupts, "checkpoint": checkpoint})
        await self.bus.close(run_id)


async def with_events(
    graph: Any, payload: Any, config: dict[str, Any], options: dict[str, Any], run_id: str
) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    """``stream_mode="events"`` as langgraph-api serves it: LangChain's ``astream_events`` v2 of the run.

    The graph's own stream parts arrive as the root run's ``on_chain_stream`` events and go out under
    their modes; every other event goes out whole as ``events`` (hidden ones excepted).
    """
    async with contextlib.aclosing(graph.astream_events(payload, config, version="v2", **options)) as events:
        async for event in events:
            if "langsmith:hidden" in (event.get("tags") or ()):
                continue
            if event["event"] == "on_chain_stream" and event["run_id"] == run_id:
                ns, mode, chunk = event["data"]["chunk"]
                yield tuple(ns), mode, chunk
            else:
                yield (), "events", event


def run_config(attempt: RunAttempt) -> dict[str, Any]:
    """The graph's config, with the keys langgraph-api adds and graphs read (``configurable.run_id``,
    ``assistant_id``, ``graph_id``, ``user_id``; ``metadata.graph_id``, ``assistant_id``, ``run_attempt``)."""
    kwargs, run_id, owner = attempt.kwargs, attempt.run_id, attempt.owner
    config = dict(kwargs.get("config") or {})
    ids = {"run_id": run_id, "graph_id": attempt.graph_id, "assistant_id": attempt.assistant_id}
    configurable = {**(config.get("configurable") or {}), **ids, "thread_id": attempt.thread_id}
    # the caller's identity, where langgraph-api puts it; never taken from the request (langgraph-api keeps
    # a ``user_id`` the request sends; here it is always the server's)
    configurable["langgraph_auth_user_id"] = configurable["user_id"] = owner
    configurable["langgraph_auth_user"] = kwargs.get("auth_user") or {
        "identity": owner,
        "is_authenticated": True,
    }
    if kwargs.get("checkpoint_id"):
        configurable["checkpoint_id"] = kwargs["checkpoint_id"]
    metadata = {
        **(config.get("metadata") or {}),
        **(kwargs.get("metadata") or {}),
        **ids,
        "run_attempt": attempt.number,
        "user_id": owner,
    }
    return {**config, "configurable": configurable, "metadata": metadata, "run_id": run_id}


def run_context(owner: str, requested: dict[str, Any] | None, granted: tuple[Permission, ...]) -> RunContext:
    """User id and grants come from the server (API key, settings); the request may only narrow the grants."""
    requested = dict(requested or {})
    asked = requested.get("permissions")
    permissions = granted if asked is None else tuple(p for p in granted if p in asked)
    return RunContext(user_id=owner, user_name=str(requested.get("user_name") or owner), permissions=permissions)


class LegacyMessages:
    """Accumulates chunks per message id for the legacy ``messages`` stream mode Studio uses."""

    def __init__(self) -> None:
        self.seen: dict[str, BaseMessage] = {}

    def add(self, message: BaseMessage, metadata: dict[str, Any]) -> list[tuple[str, Any]]:
        events: list[tuple[str, Any]] = []
        key = message.id or ""
        if key not in self.seen:
            events.append(("messages/metadata", {key: {"metadata": metadata}}))
            self.seen[key] = message
        elif type(self.seen[key]) is type(message) and type(message).__name__.endswith("Chunk"):
            self.seen[key] = self.seen[key] + message  # type: ignore[assignment]
        else:
            self.seen[key] = message
        kind = "messages/partial" if type(message).__name__.endswith("Chunk") else "messages/complete"
        events.append((kind, [message_chunk_to_message(self.seen[key])]))  # as langgraph-api: "ai", not a chunk
        return events


def messages_events(chunk: Any, requested: list[str], legacy: LegacyMessages | None) -> list[tuple[str, Any]]:
    message, metadata = chunk
    metadata = public_ids(metadata)  # it carries the run's config, the thread's key among it
    events: list[tuple[str, Any]] = []
    if "messages-tuple" in requested:
        events.append(("messages", [message, metadata]))
    if legacy is not None:
        events.extend(legacy.add(message, metadata))
    return events
