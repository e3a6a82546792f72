"""Dispatch: admitted runs handed to workers, by a claim from the database or, on an idle thread, at admission.

The stage "claimed": the dispatcher claims the oldest pending run of each idle thread while slots are free and
sleeps on the bus until woken; admission may reserve a slot (``slot_guard``) and insert its run already claimed
(``lease``), which ``submitted`` then starts here without a queue hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

from server.db import RunRow, now, transaction
from server.engine import crons, queue
from server.engine.leases import Leases
from server.engine.stopping import REPLACED_WAIT_S
from server.errors import ApiError

log = logging.getLogger("loom.server")


class SlotGuard:
    def __init__(self, manager: Dispatch) -> None:
        self.manager = manager
        self.taken = 0

    def take(self) -> bool:
        if self.taken or not self.manager._take_slot():
            return False
        self.taken = 1
        return True


class Dispatch(Leases):
    """Handing runs to this process's workers."""

    def capacity(self) -> int:
        """Accepted-but-unfinished runs allowed: the queue plus what one process runs at once."""
        return self.settings.server_queue_size + self.settings.server_concurrency

    @contextlib.contextmanager
    def slot_guard(self) -> Iterator[SlotGuard]:
        """A worker slot for a run inserted as already claimed, released however the block ends.

        Returns:
            The guard: its ``take()`` reserves a free slot here (at most one; False if none is free, workers
            are off, or the process is stopping); the slot is released on exit unless the run was started.
        """
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
        """Mark a run being inserted as claimed by this worker (the thread row is marked busy by the caller).

        Args:
            run: the transient row admission is about to insert: set ``running`` under this worker's lease.
        """
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

        Args:
            run: the run as committed.
            replaced: the runs an ``interrupt``/``rollback`` run replaced: queued ones get their ``end``, the
                running one is signalled to stop and waited for (at most ``REPLACED_WAIT_S``).
            direct: the run was inserted already claimed by this worker (``lease``): start it now.

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
        """Run creation on one thread is serialised in this process (the database decides across processes).

        Args:
            thread_id: the thread's key; None (a stateless run's new thread) takes no lock.
        """
        if thread_id is None:
            yield
            return
        lock = self._creating.setdefault(thread_id, asyncio.Lock())
        async with lock:
            yield

    @contextlib.asynccontextmanager
    async def idle_thread(self, lock: str, thread_id: str | None = None) -> AsyncIterator[None]:
        """Holds run creation under ``lock`` (the thread's key) while the state of ``thread_id`` (the stored
        thread, the key unless the thread predates keys) changes outside a run.

        Raises:
            ApiError: 409 ``thread_busy`` if a run is queued or running on the thread.
        """
        async with self.creating(lock):
            if await self.active_run(thread_id or lock):
                raise ApiError(409, "thread_busy", "the thread has an active run; cancel or wait for it first")
            yield

    async def active_run(self, thread_id: str) -> str | None:
        """The id of the oldest run queued or running on the stored thread ``thread_id``; None if it has none."""
        runs = await transaction(self.sessions, functools.partial(queue.inflight, thread_id=thread_id))
        return runs[0].run_id if runs else None

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
