"""Stop requests: a cancel is written on the run's row, then signalled to whichever worker holds the run.

A queued run is cancelled in the same transaction; a running one is asked to stop (the bus's signal, and the
worker's heartbeat reads the row anyway); the worker's signal handler cancels the run's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

from server.db import transaction
from server.engine import queue
from server.engine.following import Following

REPLACED_WAIT_S = 60.0
"""How long an interrupt/rollback request waits for the run it replaces to stop before answering."""


class StopRequests(Following):
    """Cancelling runs, from a request or from another process's signal."""

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Stop a run where it is; finished steps stay checkpointed.

        Args:
            run_id: the run.
            reason: ``cancelled``, ``interrupt`` (ends ``interrupted``) or ``rollback`` (its writes undone).

        Returns:
            Whether it was active: a queued run ends ``cancelled`` at once, a running one is asked to stop.
        """
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
        """Cancel every run queued or running on the stored thread ``thread_id`` and wait (at most
        ``REPLACED_WAIT_S``) for them to stop: before the thread is deleted."""
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
