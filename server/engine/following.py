"""Following a run: its events as clients read them (``events``), waiting for its end, the outcome this process kept.

The stage "streamed": a reader follows the bus and, when the bus is quiet or gone, asks the database how the run
ended, so a stream always gets its ``end``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from sqlalchemy import select

from server.db import TERMINAL, RunRow, transaction
from server.engine import queue
from server.engine.base import ManagerBase
from server.engine.bus import BusUnavailable
from server.engine.streams import Event, dumps

log = logging.getLogger("loom.server")


class Following(ManagerBase):
    """The run manager's readers' side: a run's events until its ``end``, its final status."""

    async def events(self, run_id: str, after: int = 0, known_status: str | None = None) -> AsyncIterator[Event]:
        """The run's events after ``after`` until its ``end``; a run that ended where no stream is left gets one,
        and so does a run whose stream cannot be read (Redis down): its end, once the database records it.

        Args:
            run_id: the run.
            after: the last sequence number the reader has (``Last-Event-ID``); 0 for every event kept.
            known_status: the run's status when the caller has just read it: a finished run whose stream has
                expired then gets its ``end`` without waiting.

        Returns:
            The events in order, the last always ``end`` (``{status, interrupts, checkpoint}``).
        """
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
        """Wait until the run has ended.

        Args:
            run_id: the run.
            known_status: its status when the caller has it (saves a query).

        Returns:
            The status its ``end`` event carries; None if its stream stopped without one.
        """
        last: Event | None = None
        async for last in self.events(run_id, known_status=known_status or await self._status(run_id)):  # noqa: B007
            pass
        if last is None or last.name != "end":
            return None
        status: str | None = json.loads(last.data).get("status")
        return status

    def take_recorded(self, run_id: str) -> queue.Outcome | None:
        """The outcome as this process committed it, handed over once (it is forgotten here), so a waiter here
        reads it without a query.

        Returns:
            The outcome, or None if another process ran the run, or a waiter here took it already.
        """
        return self._outcomes.pop(run_id, None)
