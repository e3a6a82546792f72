"""Backends that go away: an outage is a JSON 503 with ``Retry-After``, and Redis, which carries events and
signals but not runs, loses events while it is down and carries signals again once it is back.

The Redis test runs a server of its own (Debian's ``redis-server``, on a free port), killed with SIGKILL and
started again; the PostgreSQL test refuses connections to a scratch database only: the shared servers stay up.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from loom.processes import free_port, scratch_postgres_database
from loom.settings import Settings
from server.engine.bus import BusUnavailable
from server.engine.redis_bus import RedisBus
from tests.fixtures.databases import require_postgres
from tests.fixtures.servers import serving


class OwnRedis:
    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([*command, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        for _ in range(200):  # until it answers (each try waits up to 50 ms for the socket)
            try:
                client.ping()
                break
            except redis.ConnectionError:
                self.process.poll()
                assert self.process.returncode is None, "redis-server exited"
                client = redis.Redis.from_url(self.url, socket_connect_timeout=0.05)
        client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


@pytest.mark.redis
@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
async def test_a_redis_outage_loses_events_not_runs_and_signals_come_back(own_redis: OwnRedis) -> None:
    settings = Settings(redis_url=own_redis.url)
    # a bus reads redis-py's package metadata from disk once, as a server does before it serves
    bus, sender = await asyncio.to_thread(RedisBus, settings), await asyncio.to_thread(RedisBus, settings)
    stops: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    await bus.start(lambda run_id, reason: stops.put_nowait((run_id, reason)))
    try:
        await bus.publish("r1", "values", {"n": 1})
        await sender.signal("r1", "cancelled")
        assert await asyncio.wait_for(stops.get(), 30) == ("r1", "cancelled")

        await asyncio.to_thread(own_redis.kill)
        await bus.publish("r1", "values", {"n": 2})  # dropped, not raised into the run
        await bus.publish("r2", "metadata", {"run_id": "r2"})  # a run's first event, too
        await bus.close("r1")
        await sender.signal("r1", "cancelled")  # the stop is in the database; the heartbeat brings it
        await sender.wake()
        with pytest.raises(BusUnavailable):
            await bus.has("r1")
        with pytest.raises(BusUnavailable):
            await anext(aiter(bus.follow("r1", 0, 0.1)))

        await asyncio.to_thread(own_redis.start)  # empty: it kept nothing
        async with asyncio.timeout(30):
            while True:  # the listener subscribes again on its own
                await sender.signal("r3", "interrupt")
                try:
                    assert await asyncio.wait_for(stops.get(), 0.5) == ("r3", "interrupt")
                    break
                except TimeoutError:
                    continue
    finally:
        await bus.stop()
        await sender.stop()


def _allow_connections(url: str, allowed: bool) -> None:
    """PostgreSQL refusing the database, as during a restart or failover; the shared server stays up."""
    database = make_url(url).database
    with psycopg.connect(require_postgres(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            cut = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            )
            admin.execute(cut, (database,))


@pytest.mark.postgres
async def test_a_database_outage_is_a_json_503_with_retry_after(tmp_path: Path) -> None:
    with scratch_postgres_database(require_postgres(), "loom_outage") as url:
        env = {"LOOM_DATABASE_URL": url, "LOOM_CHECKPOINT_URL": url}
        with serving(tmp_path, fixtures=False, **env) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                thread_id = (await http.post("/threads", json={})).json()["thread_id"]
                await asyncio.to_thread(_allow_connections, url, False)
                try:
                    refused = [await http.get(f"/threads/{thread_id}"), await http.post("/threads", json={})]
                finally:
                    await asyncio.to_thread(_allow_connections, url, True)
                again = await http.get(f"/threads/{thread_id}")
    for answer in refused:
        assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
        assert answer.json()["code"] == "unavailable"
    assert again.status_code == 200
