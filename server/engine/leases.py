"""Leases and reaping: a worker renews the leases of the runs it holds; runs whose lease lapsed go back to the queue.

The stages "leased" and "reaped": the heartbeat (every third of ``run_lease_s``) also reads cancel requests from
the rows; the reaper (every half lease, in the dispatcher) requeues a dead worker's runs with ``attempt + 1``.
"""

from __future__ import annotations

import asyncio
import logging

from server.engine import queue
from server.engine.execution import Execution

log = logging.getLogger("loom.server")


class Leases(Execution):
    """Keeping this worker's runs and taking over a dead worker's."""

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

    async def _reap(self) -> None:
        """Runs whose worker died: back to pending, or ended (cancel asked, attempts used up)."""
        reaped = await queue.reap(self.sessions, self.settings.run_max_attempts)
        for run_id in reaped.requeued:
            log.warning("run %s lost its worker; queued again", run_id)
        for run_id, status in reaped.ended:
            await self._announce_end(run_id, status)
