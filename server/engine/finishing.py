"""Finishing a run: its outcome and the thread's new status recorded in one transaction, then ``end`` published.

The stage "finished": the row is written (only if this worker still holds the lease) before any client is told,
so a client's next call finds the thread free; a rollback first restores the thread's state from before the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from server.db import RunStatus, ThreadStatus
from server.engine import queue
from server.engine.attempt import RunAttempt
from server.engine.stopping import StopRequests
from server.engine.streams import dumps
from server.engine.usage import UsageMeter
from server.engine.wire import checkpoint_of, interrupt_views, output_values
from server.observability import logs, observe

log = logging.getLogger("loom.server")

KEPT_OUTCOMES = 1024
"""Outcomes of runs this process finished, kept for a waiter here (``RunManager.take_recorded``); oldest go first."""


@dataclass(frozen=True)
class Ending:
    """How an attempt ended, before ``_finish`` reads the thread's state and records it."""

    status: RunStatus
    error: dict[str, Any] | None
    reason: str | None
    """Why it was stopped, if it was (``cancelled``, ``interrupt``, ``rollback``)."""
    meter: UsageMeter | None
    """The attempt's usage meter, once the graph was about to start."""


class Finishing(StopRequests):
    """Recording how an attempt ended."""

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
