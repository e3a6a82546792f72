"""Run events and control signals behind one interface: in process (embedded) or on Redis (scale mode).

The database decides what runs where; the bus only carries what is said about runs while they run:
numbered events (the SSE ``id:``, so ``Last-Event-ID`` resumes), cancel signals to whichever worker
holds a run, and a wake-up when new work is queued. Both buses bound what they keep: a run's events
are capped in number and expire ``stream_ttl_s`` after the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from loom.settings import Settings
from server.engine.streams import Event, RunStream, dumps

SignalHandler = Callable[[str, str], None]
"""Called with ``(run_id, reason)`` when some process asks for a run to stop."""


class BusUnavailable(ConnectionError):
    """The bus cannot be read just now (Redis down): a run's end is then read from the database instead."""


class EventBus(Protocol):
    """What the run engine needs from a message bus; :class:`LocalBus` and ``RedisBus`` implement it.

    Nothing on the bus is the truth about a run (the database is): a lost event or signal delays a reader or
    a stop, never loses a run. Publishing never fails a run; reading may raise ``BusUnavailable``.
    """

    async def start(self, on_signal: SignalHandler) -> None:
        """Begin delivering stop signals to this process.

        Args:
            on_signal: called with ``(run_id, reason)`` for every ``signal`` any process sends (this one's
                included); it must not block (it runs on the event loop, or on the bus's reader task).
        """
        ...

    async def stop(self) -> None:
        """Stop delivering signals and release the bus's connections; published streams stay readable elsewhere."""
        ...

    async def publish(self, run_id: str, name: str, data: object) -> None:
        """Append an event to the run's stream, numbered one past the last (the SSE ``id``).

        Args:
            run_id: the run whose stream it goes on (created on first use; reopened for a new attempt).
            name: the SSE event name (``metadata``, a stream mode, ``mode|ns``, ``error``, ``end``).
            data: JSON-serialisable; serialised once, here.
        """
        ...

    async def close(self, run_id: str) -> None:
        """Mark the run's stream ended: readers get what is left, and it expires ``stream_ttl_s`` later."""
        ...

    def follow(self, run_id: str, after: int, idle_s: float) -> AsyncIterator[Event | None]:
        """The run's events numbered above ``after``, in order, then live ones as they are published.

        Args:
            run_id: the run; a stream nobody has written yet is waited for (the writer may not have started).
            after: the last sequence number the reader has (``Last-Event-ID``; 0 for all).
            idle_s: after this long without an event, ``None`` is yielded and following goes on.

        Returns:
            An iterator of events and ``None`` heartbeats. The ``None`` is the reader's chance to ask the
            database whether the run has ended where no event will come (its writer died): a reader stops
            itself, at the ``end`` event or on such a check. The iterator may also stop once the stream is
            closed and read (in process); it never stops on its own on Redis.

        Raises:
            BusUnavailable: the stream cannot be read (Redis down); the run's end is then the database's.
        """
        ...

    async def has(self, run_id: str) -> bool:
        """Whether the run's stream is still kept (not yet expired or evicted). Raises ``BusUnavailable``."""
        ...

    async def signal(self, run_id: str, reason: str) -> None:
        """Ask whichever process runs ``run_id`` to stop it (``reason``: ``cancelled``, ``interrupt``,
        ``rollback``). Best effort: the request is also in the run's row, which the worker's heartbeat reads."""
        ...

    async def wake(self) -> None:
        """Tell every worker that work may be waiting (a run queued, a slot freed). Best effort: workers poll."""
        ...

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return after a ``wake`` (from any process, since the last return) or after ``timeout_s``.

        Args:
            timeout_s: the longest wait (the dispatcher's ``run_poll_s``); returning tells nothing about
                whether work exists: the caller claims from the database and may find none.
        """
        ...


class LocalBus:
    """The embedded bus: one :class:`RunStream` per run, evicted after the run ends (count and age bounded)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.limit = settings.stream_buffer_events
        self.ttl_s = settings.stream_ttl_s
        self.keep = settings.stream_keep_finished
        self.streams: dict[str, RunStream] = {}
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._on_signal: SignalHandler | None = None
        self._work = asyncio.Event()

    async def start(self, on_signal: SignalHandler) -> None:
        self._on_signal = on_signal

    async def stop(self) -> None:
        self._on_signal = None

    def stream(self, run_id: str) -> RunStream:
        """The run's stream, created on first use by a writer or a reader (a reader waits for the writer)."""
        if (stream := self.streams.get(run_id)) is None:
            stream = self.streams[run_id] = RunStream(self.limit)
        return stream

    async def publish(self, run_id: str, name: str, data: object) -> None:
        stream = self.stream(run_id)
        if stream.closed:  # a new attempt of a run that this process saw end (a lease lost and regained)
            stream.reopen()
            self._ended.pop(run_id, None)
        await stream.publish(name, data)

    async def close(self, run_id: str) -> None:
        await self.stream(run_id).close()
        self._ended[run_id] = self.clock() + self.ttl_s
        self._ended.move_to_end(run_id)
        self._evict()

    def _evict(self) -> None:
        """Ended streams leave after ``stream_ttl_s`` or when more than ``stream_keep_finished`` are kept."""
        clock = self.clock()
        while self._ended:
            run_id, expires = next(iter(self._ended.items()))
            if expires > clock and len(self._ended) <= self.keep:
                return
            self._ended.popitem(last=False)
            self.streams.pop(run_id, None)

    async def follow(self, run_id: str, after: int, idle_s: float) -> AsyncIterator[Event | None]:
        self._evict()
        async for event in self.stream(run_id).follow(after, idle_s):
            yield event

    async def has(self, run_id: str) -> bool:
        self._evict()
        return run_id in self.streams

    async def signal(self, run_id: str, reason: str) -> None:
        if self._on_signal is not None:
            self._on_signal(run_id, reason)

    async def wake(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._work.wait()
        self._work.clear()


def open_bus(settings: Settings) -> EventBus:
    """Redis when ``LOOM_REDIS_URL`` is set, else the in-process bus."""
    if settings.redis_url:
        from server.engine.redis_bus import RedisBus

        return RedisBus(settings)
    return LocalBus(settings)


__all__ = ["Event", "EventBus", "LocalBus", "SignalHandler", "dumps", "open_bus"]
