"""The run manager: a bounded queue, a worker pool, one active run per thread, crash recovery.

A run is a row first (so an accepted run survives a crash), then a queue entry. Workers execute
it with ``graph.astream`` on the shared checkpointer with ``durability="sync"``: every finished
step is on disk before the next starts, so a run recovered after ``kill -9`` resumes from its last
checkpoint and finished nodes do not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict, defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphRecursionError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from loom.settings import Settings
from nodes.models import retry_budget
from server.context import validate_context
from server.db import RunRow, ThreadRow, claim_thread, now
from server.errors import ApiError
from server.streams import RunStream
from state.common import RunContext

log = logging.getLogger("loom.server")

RESULTS_KEPT = 256
GRAPH_MODES = {"values", "updates", "custom", "debug", "tasks", "checkpoints", "messages"}


class ThreadInterrupted(Exception):
    """Raised before a queued run starts on a thread that now waits for a human."""


class RunManager:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        graphs: dict[str, CompiledStateGraph[Any, Any, Any, Any]],
        checkpointer: BaseCheckpointSaver[str],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.graphs = graphs
        self.checkpointer = checkpointer
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=settings.server_queue_size)
        self.streams: dict[str, RunStream] = {}
        self.results: OrderedDict[str, Any] = OrderedDict()
        """Final values of recent runs, so /wait answers even after a stateless thread is deleted."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_reason: dict[str, str] = {}
        self._active: dict[str, str] = {}
        self._waiting: defaultdict[str, deque[str]] = defaultdict(deque)
        self._rollback_to: dict[str, str | None] = {}
        self._start_checkpoint: dict[str, str | None] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._creating: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._recover()
        count = self.settings.server_concurrency
        self._workers = [asyncio.create_task(self._worker(), name=f"loom-worker-{i}") for i in range(count)]

    async def stop(self) -> None:
        """Runs in flight stay ``running`` in the database, so the next start resumes them as after a crash."""
        self._stopping = True
        for worker in self._workers:
            worker.cancel()
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._workers, *self._tasks.values(), return_exceptions=True)

    async def _recover(self) -> None:
        """Runs left running or pending by a crash go back on the queue, marked as a new attempt."""
        async with self.sessions.begin() as session:
            query = select(RunRow).where(RunRow.status.in_(("pending", "running"))).order_by(RunRow.created_at)
            rows = (await session.scalars(query)).all()
            for run in rows:
                if run.status == "running":
                    run.attempt += 1
                run.status = "pending"
                if run.thread_id and (thread := await session.get(ThreadRow, run.thread_id)) is not None:
                    thread.status = "idle"
        for run in rows:
            log.warning("recovering run %s (attempt %s)", run.run_id, run.attempt)
            self.streams[run.run_id] = RunStream(self.settings.stream_buffer_events)
            self._enqueue(run.run_id, run.thread_id)

    # submission ------------------------------------------------------------------------------
    def check_capacity(self) -> None:
        if self.queue.full():
            raise ApiError(429, "queue_full", "the run queue is full; retry later", headers={"Retry-After": "2"})

    async def submit(self, run: RunRow) -> None:
        """Queue a stored run; behind a thread's active run it waits, or replaces it (interrupt/rollback)."""
        self.streams[run.run_id] = RunStream(self.settings.stream_buffer_events)
        active = self.active_run(run.thread_id) if run.thread_id else None
        self._enqueue(run.run_id, run.thread_id)
        if active and run.multitask_strategy in ("interrupt", "rollback"):
            if run.multitask_strategy == "rollback":
                self._rollback_to[run.run_id] = active
            await self.cancel(active, reason=run.multitask_strategy)

    def _enqueue(self, run_id: str, thread_id: str | None) -> None:
        """A thread has at most one run reserved (queued or running); the rest wait in order."""
        if thread_id and thread_id in self._active:
            self._waiting[thread_id].append(run_id)
            return
        if thread_id:
            self._active[thread_id] = run_id
        self.queue.put_nowait(run_id)

    def _release(self, thread_id: str) -> None:
        self._active.pop(thread_id, None)
        waiting = self._waiting.pop(thread_id, deque())
        if waiting:
            self._enqueue(waiting.popleft(), thread_id)
            if waiting:
                self._waiting[thread_id] = waiting

    @contextlib.asynccontextmanager
    async def creating(self, thread_id: str | None) -> AsyncIterator[None]:
        """Run creation on one thread is serialised: two resumes of one interrupt cannot both pass the check."""
        if thread_id is None:
            yield
            return
        lock = self._creating.setdefault(thread_id, asyncio.Lock())
        async with lock:
            yield

    @contextlib.asynccontextmanager
    async def idle_thread(self, thread_id: str) -> AsyncIterator[None]:
        """Holds run creation on ``thread_id`` while its state changes outside a run; 409 if a run has it."""
        async with self.creating(thread_id):
            if self.active_run(thread_id):
                raise ApiError(409, "thread_busy", "the thread has an active run; cancel or wait for it first")
            yield

    def active_run(self, thread_id: str) -> str | None:
        """The run queued or running on ``thread_id``, if any."""
        return self._active.get(thread_id)

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Stop a run where it is; finished steps stay checkpointed. False if it was not active."""
        self._cancel_reason[run_id] = reason
        if (task := self._tasks.get(run_id)) is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(asyncio.wait({task}))
            return True
        async with self.sessions.begin() as session:
            run = await session.get(RunRow, run_id)
            if run is None or run.status != "pending":
                return False
            run.status = "cancelled"
        thread_id = run.thread_id
        if thread_id and run_id in self._waiting.get(thread_id, ()):
            self._waiting[thread_id].remove(run_id)
        # a queued run is skipped by the worker when it sees the status; its slot frees then
        if stream := self.streams.get(run_id):
            await stream.publish("end", {"status": "cancelled", "interrupts": [], "checkpoint": None})
            await stream.close()
        return True

    # execution -------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while not self._stopping:  # awaiting a cancelled run swallows the worker's own cancellation
            run_id = await self.queue.get()
            try:
                task = asyncio.create_task(self._execute(run_id), name=f"loom-run-{run_id}")
                self._tasks[run_id] = task
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception:
                log.exception("run %s crashed its worker", run_id)
            finally:
                self._tasks.pop(run_id, None)
                self.queue.task_done()

    async def _execute(self, run_id: str) -> None:
        async with self.sessions.begin() as session:
            run = await session.get(RunRow, run_id)
            if run is None or run.status != "pending":
                if run is not None and run.thread_id and self._active.get(run.thread_id) == run_id:
                    self._release(run.thread_id)
                return
            if run.thread_id:
                await claim_thread(session, run.thread_id)
            run.status = "running"
            snapshot: dict[str, Any] = {
                "thread_id": run.thread_id,
                "graph_id": run.graph_id,
                "owner": run.owner,
                "kwargs": dict(run.kwargs),
                "attempt": run.attempt,
            }
        stream = self.streams.setdefault(run_id, RunStream(self.settings.stream_buffer_events))
        status, error = "success", None
        try:
            await stream.publish("metadata", {"run_id": run_id, "attempt": snapshot["attempt"]})
            if snapshot["attempt"] > 1:
                await stream.publish("recovered", {"run_id": run_id, "attempt": snapshot["attempt"]})
            async with asyncio.timeout(self.settings.run_timeout_s):
                with retry_budget(self.settings.run_retry_budget):
                    await self._stream_graph(run_id, snapshot, stream)
        except asyncio.CancelledError:
            if self._stopping:
                raise
            status = "interrupted" if self._cancel_reason.get(run_id) == "interrupt" else "cancelled"
        except TimeoutError:
            message = f"run exceeded {self.settings.run_timeout_s}s"
            status, error = "timeout", {"error": "TimeoutError", "message": message}
        except GraphRecursionError as exc:
            status, error = "error", {"error": "GraphRecursionError", "message": str(exc)}
        except Exception as exc:  # a graph failure ends the run, never the server
            log.exception("run %s failed", run_id)
            status, error = "error", {"error": type(exc).__name__, "message": str(exc)}
        await self._finish(run_id, snapshot, stream, status, error)

    async def _stream_graph(self, run_id: str, run: dict[str, Any], stream: RunStream) -> None:
        kwargs = run["kwargs"]
        graph = self.graphs[run["graph_id"]]
        if replaced := self._rollback_to.pop(run_id, None):
            await self._roll_back(replaced, run["thread_id"], kwargs)
        if run["attempt"] == 1:
            await self._refuse_input_over_interrupt(graph, run["thread_id"], kwargs)
        config = run_config(run_id, run, kwargs)
        self._start_checkpoint[run_id] = await self._latest_checkpoint_id(run["thread_id"])
        payload = await self._payload(run_id, run["thread_id"], kwargs, run["attempt"])
        requested = kwargs.get("stream_mode") or ["values"]
        modes = sorted({"messages" if mode.startswith("messages") else mode for mode in requested} & GRAPH_MODES)
        legacy_messages = LegacyMessages() if "messages" in requested else None
        async for ns, mode, chunk in graph.astream(  # type: ignore[call-overload]
            payload,
            config,
            context=validate_context(graph, kwargs.get("context")) or run_context(run["owner"], kwargs.get("context")),
            stream_mode=modes,
            output_keys=graph.output_channels,  # as langgraph-api: values/updates show the output schema only
            subgraphs=True,
            interrupt_before=kwargs.get("interrupt_before"),
            interrupt_after=kwargs.get("interrupt_after"),
            durability=kwargs.get("durability") or "sync",
        ):
            if ns and not kwargs.get("stream_subgraphs"):
                continue
            suffix = "|" + "|".join(ns) if ns else ""
            if mode == "messages":
                for name, data in messages_events(chunk, requested, legacy_messages):
                    await stream.publish(name + suffix, data)
            else:
                await stream.publish(mode + suffix, chunk)

    async def _roll_back(self, replaced: str, thread_id: str, kwargs: dict[str, Any]) -> None:
        """Start where the replaced run started; if that was an empty thread, every checkpoint is its work."""
        if replaced not in self._start_checkpoint:  # it never ran: nothing to undo
            return
        start = self._start_checkpoint.pop(replaced)
        if start is None and not kwargs.get("checkpoint_id"):
            await self.checkpointer.adelete_thread(thread_id)
        kwargs["checkpoint_id"] = kwargs.get("checkpoint_id") or start

    async def _restore_start(self, run_id: str, run: dict[str, Any]) -> None:
        """Cancel with ``action=rollback``: the thread's latest state becomes what it was before this run."""
        start = self._start_checkpoint.get(run_id)
        if start is None:  # the run started on an empty thread: all its checkpoints are its own work
            await self.checkpointer.adelete_thread(run["thread_id"])
            return
        config: RunnableConfig = {"configurable": {"thread_id": run["thread_id"], "checkpoint_id": start}}
        await self.graphs[run["graph_id"]].aupdate_state(config, None, as_node="__copy__")

    async def _refuse_input_over_interrupt(self, graph: Any, thread_id: str | None, kwargs: dict[str, Any]) -> None:
        """A run queued with new input must not silently drop an interrupt raised while it waited."""
        if not thread_id or kwargs.get("input") is None or kwargs.get("checkpoint_id"):
            return
        snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        if snapshot.interrupts:
            raise ThreadInterrupted(
                "the thread is waiting on an interrupt raised after this run was queued; answer it with command.resume"
            )

    async def _latest_checkpoint_id(self, thread_id: str | None) -> str | None:
        if not thread_id:
            return None
        latest = await self.checkpointer.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        return latest.config["configurable"].get("checkpoint_id") if latest else None

    async def _payload(self, run_id: str, thread_id: str | None, kwargs: dict[str, Any], attempt: int) -> Any:
        """What to start the graph with; a recovered run resumes from its own last checkpoint."""
        if attempt > 1 and thread_id:
            latest = await self.checkpointer.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
            if latest is not None and (latest.metadata or {}).get("run_id") == run_id:
                return None
        if command := kwargs.get("command"):
            return Command(resume=command.get("resume"), update=command.get("update"), goto=command.get("goto") or ())
        return kwargs.get("input")

    async def _finish(
        self, run_id: str, run: dict[str, Any], stream: RunStream, status: str, error: dict[str, Any] | None
    ) -> None:
        """Record the outcome and free the thread before telling clients, so their next call finds it idle."""
        thread_id = run["thread_id"]
        interrupts: list[dict[str, Any]] = []
        checkpoint = None
        thread_status = "error" if status in ("error", "timeout") else "idle"
        if thread_id and self._cancel_reason.get(run_id) == "rollback":
            await self._restore_start(run_id, run)
        if thread_id:
            snapshot = await self.graphs[run["graph_id"]].aget_state({"configurable": {"thread_id": thread_id}})
            interrupts = [{"id": i.id, "value": i.value} for i in snapshot.interrupts]
            checkpoint = snapshot.config.get("configurable") if snapshot.config else None
            self.results[run_id] = output_values(self.graphs[run["graph_id"]], snapshot.values)
            while len(self.results) > RESULTS_KEPT:
                self.results.popitem(last=False)
            if status == "success" and (interrupts or snapshot.next):
                status = "interrupted"
            # a pending question outlives any later failure on the thread
            if interrupts or (snapshot.next and status in ("interrupted", "success")):
                thread_status = "interrupted"
        async with self.sessions.begin() as session:
            if (row := await session.get(RunRow, run_id)) is not None:
                row.status, row.error = status, error
            if thread_id and (thread := await session.get(ThreadRow, thread_id)) is not None:
                thread.status, thread.updated_at = thread_status, now()
        self._cancel_reason.pop(run_id, None)
        if run_id not in self._rollback_to.values():  # a rollback run still needs our start point
            self._start_checkpoint.pop(run_id, None)
        if thread_id:
            if run["kwargs"].get("ephemeral"):
                await self.checkpointer.adelete_thread(thread_id)
            self._release(thread_id)
        if error:
            await stream.publish("error", error)
        await stream.publish("end", {"status": status, "interrupts": interrupts, "checkpoint": checkpoint})
        await stream.close()

    async def wait(self, run_id: str) -> None:
        if stream := self.streams.get(run_id):
            async for _ in stream.follow():
                pass


def output_values(graph: CompiledStateGraph[Any, Any, Any, Any], values: Any) -> Any:
    """What ``/wait`` answers: as langgraph-api, the output schema's keys, not internal state."""
    channels = graph.output_channels
    if not isinstance(values, dict) or isinstance(channels, str):
        return values
    return {key: value for key, value in values.items() if key in channels or key == "__interrupt__"}


def run_config(run_id: str, run: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    config = dict(kwargs.get("config") or {})
    configurable = {**(config.get("configurable") or {}), "thread_id": run["thread_id"]}
    # the caller's identity, where langgraph-api puts it; never taken from the request
    configurable["langgraph_auth_user_id"] = run["owner"]
    configurable["langgraph_auth_user"] = {"identity": run["owner"], "is_authenticated": True}
    if kwargs.get("checkpoint_id"):
        configurable["checkpoint_id"] = kwargs["checkpoint_id"]
    metadata = {
        **(config.get("metadata") or {}),
        **(kwargs.get("metadata") or {}),
        "run_id": run_id,
        "user_id": run["owner"],
    }
    return {**config, "configurable": configurable, "metadata": metadata, "run_id": run_id}


def run_context(owner: str, requested: dict[str, Any] | None) -> RunContext:
    """The caller may choose name and permissions; the user id always comes from authentication."""
    requested = dict(requested or {})
    permissions = tuple(requested.get("permissions") or ("read",))
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
        events.append((kind, [self.seen[key]]))
        return events


def messages_events(chunk: Any, requested: list[str], legacy: LegacyMessages | None) -> list[tuple[str, Any]]:
    message, metadata = chunk
    events: list[tuple[str, Any]] = []
    if "messages-tuple" in requested:
        events.append(("messages", [message, metadata]))
    if legacy is not None:
        events.extend(legacy.add(message, metadata))
    return events
