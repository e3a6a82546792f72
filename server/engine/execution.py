"""Executing a run: one attempt, from its ``metadata`` event through the graph's stream to its ending.

The stage "executed": the graph runs with ``durability="sync"`` on the shared checkpointer, its stream parts
published as the run's events (serialised once); cancellation, timeouts, budgets and failures become the
attempt's ``Ending``, which ``Finishing`` records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, get_args

from langchain_core.messages import BaseMessage, message_chunk_to_message
from langgraph.errors import GraphRecursionError
from langgraph.types import Command

from nodes.models import retry_budget
from server.auth import user_of
from server.db import RunRow, RunStatus
from server.engine.attempt import RunAttempt
from server.engine.context import own_context_schema, validate_context
from server.engine.finishing import Ending, Finishing
from server.engine.usage import BudgetExceeded, UsageMeter, run_limits
from server.engine.wire import CONFIG_MODES, debug_checkpoint, public_ids
from server.observability import observe
from server.registry import FactoryCall
from server.store_scope import ScopedStore, with_caller_store
from state.common import Permission, RunContext

log = logging.getLogger("loom.server")

GRAPH_MODES = {"values", "updates", "custom", "debug", "tasks", "checkpoints", "messages"}


class QueuedRunRefused(Exception):
    """A queued run cannot start as it was asked: the thread changed while it waited. An outcome, not a fault."""


class ThreadInterrupted(QueuedRunRefused):
    """Raised before a queued run starts on a thread that now waits for a human."""


class CheckpointGone(QueuedRunRefused):
    """Raised before a queued run starts from a checkpoint that a rollback removed while it waited."""


class Execution(Finishing):
    """Running claimed runs' graphs, one task per run."""

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
                graph = await rebuild(stack=factory_scope, call=factory_call(graph, attempt, config))
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


def factory_call(graph: Any, attempt: RunAttempt, config: dict[str, Any]) -> FactoryCall:
    """How a factory is called for a run: its config, its caller, their store, its context (as the graph's own
    schema reads it, else as the request sent it)."""
    requested = {k: v for k, v in (attempt.kwargs.get("context") or {}).items() if k != "budget"}
    context = validate_context(graph, requested) if own_context_schema(graph) is not None else requested
    user = user_of(config["configurable"]["langgraph_auth_user"])
    store = ScopedStore(graph.store, attempt.owner) if graph.store is not None else None
    return FactoryCall("threads.create_run", config, user, store, context)
