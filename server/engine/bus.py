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
    """What the run engine needs from a message bus; :class:`LocalBus` and ``RedisBus`` implement it."""

    async def start(self, on_signal: SignalHandler) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, run_id: str, name: str, data: object) -> None: ...
    async def close(self, run_id: str) -> None: ...
    def follow(self, run_id: str, after: int, idle_s: float) -> AsyncIterator[Event | None]: ...
    async def has(self, run_id: str) -> bool: ...
    async def signal(self, run_id: str, reason: str) -> None: ...
    async def wake(self) -> None: ...
    async def wait_for_work(self, timeout_s: float) -> None: ...


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
