"""The scale-mode bus: run events on Redis Streams, cancel signals and wake-ups on Redis pub/sub.

Each run's events are one stream, ``loom:run:{id}:events``, whose entry ids are ``{seq}-0``: the
sequence number is the SSE ``id:``, so ``Last-Event-ID`` resumes at the exact event through any API
process, even one started after the run ended. Streams are capped (``MAXLEN ~ stream_buffer_events``)
and expire ``stream_ttl_s`` after the run ends (and at the latest ``run_timeout_s`` after that if a
worker dies without ending it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from loom.settings import Settings
from server.engine.bus import BusUnavailable, SignalHandler
from server.engine.streams import Event, dumps

log = logging.getLogger("loom.server")

SIGNALS = "loom:signals"
WORK = "loom:work"
READ_BATCH = 512
RESUBSCRIBE_MIN_S, RESUBSCRIBE_MAX_S = 0.1, 5.0


def events_key(run_id: str) -> str:
    return f"loom:run:{run_id}:events"


class RedisBus:
    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url is not None
        # redis-py reads its package metadata from disk for every new connection unless given its driver info,
        # which is read here once, before the event loop serves anything
        self.redis: redis.Redis = redis.Redis.from_url(
            settings.redis_url, max_connections=1024, driver_info=DriverInfo()
        )
        self.maxlen = settings.stream_buffer_events
        self.ttl_s = int(settings.stream_ttl_s)
        self.live_ttl_s = int(settings.run_timeout_s + settings.stream_ttl_s)
        self._next: dict[str, int] = {}
        """Next sequence number of each run this process writes; dropped when the run ends."""
        self._work = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    async def start(self, on_signal: SignalHandler) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(SIGNALS, WORK)
        self._listener = asyncio.create_task(self._listen(pubsub, on_signal), name="loom-redis-listener")

    async def _listen(self, pubsub: Any, on_signal: SignalHandler) -> None:
        """Signals and wake-ups for as long as the process runs: a dropped subscription (Redis restarted, the
        connection killed) is made again, with backoff. Meanwhile stops still arrive, later, through the
        lease heartbeat, which reads them from the database, and new work through the dispatcher's poll."""
        while True:
            try:
                await self._receive(pubsub, on_signal)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("Redis subscription lost (%s); subscribing again", exc)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                pubsub = await self._subscribe_again()

    async def _subscribe_again(self) -> Any:
        pause = RESUBSCRIBE_MIN_S
        while True:
            await asyncio.sleep(pause)
            pubsub: Any = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(SIGNALS, WORK)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                pause = min(pause * 2, RESUBSCRIBE_MAX_S)
                continue
            log.info("Redis subscription restored")
            self._work.set()  # work announced while unsubscribed is looked for now
            return pubsub

    async def _receive(self, pubsub: Any, on_signal: SignalHandler) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                channel = message["channel"].decode()
                if channel == WORK:
                    self._work.set()
                elif channel == SIGNALS:
                    run_id, _, reason = message["data"].decode().partition(" ")
                    on_signal(run_id, reason)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.redis.aclose()

    async def _last_seq(self, run_id: str) -> int:
        last = await self.redis.xrevrange(events_key(run_id), count=1)
        return int(last[0][0].split(b"-")[0]) if last else 0

    async def publish(self, run_id: str, name: str, data: object) -> None:
        fields = {"name": name, "data": dumps(data)}
        key = events_key(run_id)
        for _ in range(3):  # another writer (a worker whose lease lapsed) may have moved the stream on
            first = run_id not in self._next
            try:
                seq = self._next[run_id] if not first else await self._last_seq(run_id) + 1
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(key, fields, id=f"{seq}-0", maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
                    if first:
                        pipe.expire(key, self.live_ttl_s)
                    await pipe.execute()
            except ResponseError:
                self._next.pop(run_id, None)
                continue
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # Redis carries events, not runs: the run goes on and its outcome is recorded in the database,
                # where a client that missed this event finds the run's end
                log.warning("event %s of run %s lost: Redis unreachable (%s)", name, run_id, exc)
                return
            self._next[run_id] = seq + 1
            return
        log.error("could not append %s to the event stream of run %s", name, run_id)

    async def close(self, run_id: str) -> None:
        self._next.pop(run_id, None)
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError):  # it expires anyway (``live_ttl_s``)
            await self.redis.expire(events_key(run_id), self.ttl_s)

    async def has(self, run_id: str) -> bool:
        try:
            return bool(await self.redis.exists(events_key(run_id)))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise BusUnavailable(str(exc)) from exc

    async def follow(self, run_id: str, after: int, idle_s: float) -> AsyncIterator[Event | None]:
        key = events_key(run_id)
        last = f"{after}-0"
        while True:
            try:
                answer = await self.redis.xread({key: last}, count=READ_BATCH, block=int(idle_s * 1000))
            except (RedisConnectionError, RedisTimeoutError) as exc:
                raise BusUnavailable(str(exc)) from exc
            if not answer:
                yield None
                continue
            for entry_id, fields in answer[0][1]:
                last = entry_id.decode()
                yield Event(int(last.split("-")[0]), fields[b"name"].decode(), fields[b"data"].decode())

    async def signal(self, run_id: str, reason: str) -> None:
        """Best effort: the stop is already in the run's row, which the worker's heartbeat reads anyway."""
        try:
            await self.redis.publish(SIGNALS, f"{run_id} {reason}")
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("stop of run %s not signalled (Redis unreachable: %s); its heartbeat will see it", run_id, exc)

    async def wake(self) -> None:
        """Best effort: workers also poll the database for pending runs."""
        self._work.set()
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
            await self.redis.publish(WORK, "")

    async def wait_for_work(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._work.wait()
        self._work.clear()
