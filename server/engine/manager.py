"""The run manager: workers that claim runs from the database, execute them, and announce them on the bus.

A run is a row (see ``server.engine.queue``): accepted in one transaction with its admission check, claimed
by a worker in another, kept under a renewed lease while it runs, finished in a third. Workers execute
with ``graph.astream`` on the shared checkpointer with ``durability="sync"``: every finished step is on
disk before the next starts, so a run taken over after its worker died resumes from its last
checkpoint and finished nodes do not run again. Events and cancel signals travel on the bus
(``server.engine.bus``): in process when embedded, Redis in scale mode; the code path is the same.

The manager is built in layers, one module per stage of a run, each using only the layers below it:
``base`` (collaborators and bookkeeping) ← ``following`` (streamed: events, waiting) ← ``stopping`` (stop
requests) ← ``finishing`` (finished: the outcome recorded) ← ``execution`` (executed: the graph's stream) ←
``leases`` (leased and reaped) ← ``dispatch`` (claimed, and runs inserted already claimed at admission) ←
``RunManager`` (started and stopped with the server). Admission itself is ``server.engine.admission``.
"""

from __future__ import annotations

import asyncio
import contextlib

from server.engine import queue
from server.engine.dispatch import Dispatch


class RunManager(Dispatch):
    """Workers that claim, execute, lease and finish runs, and the readers' and cancellers' side of them."""

    async def start(self, claim: bool = True) -> None:
        """Listen for stop signals and, when this process runs workers (``run_workers``), start the heartbeat
        (leases) and, with ``claim``, the dispatcher (claims, reaping, crons).

        ``claim=False`` (the CLI): only the runs this process admits and starts itself (``submitted``) run here.
        """
        await self.bus.start(self._on_signal)
        if self.settings.run_workers:
            self._loops = [asyncio.create_task(self._heartbeat(), name="loom-heartbeat")]
            if claim:
                self._loops.append(asyncio.create_task(self._dispatch(), name="loom-dispatch"))

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
