"""``checkpointer.ttl`` from a project's ``langgraph.json``: idle threads expire with everything they hold.

Minutes cannot pass in a test, so the test ages a thread the way time would: it moves the row's
``updated_at`` back past the TTL in the server's database. The server sweeps every 0.3 s
(``sweep_interval_minutes`` may be a fraction, as in langgraph-api); the test waits on what a client
observes (the thread answering 404), bounded, never on a sleep of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from sqlalchemy import create_engine, update

from loom.persistence import open_checkpointer
from loom.processes import PROJECT_ROOT, LoomServer, scratch_postgres_database
from loom.settings import Settings
from loom.threads import thread_key
from server.db import RunRow, ThreadRow, new_id, now, open_database
from server.engine.thread_ttl import ThreadTTL, parse_ttl, sweep
from server.registry import ConfigError
from services.paths import artifacts_folder
from tests.fixtures.servers import new_server
from tests.server.live import DEADLINE_S, is_custom, open_gate, until

FIXTURES = PROJECT_ROOT / "tests" / "server" / "fixture_graphs.py"
TTL = {"strategy": "delete", "default_ttl": 60, "sweep_interval_minutes": 0.005}
USER = "demo"
"""The single local user of a server without API keys."""


def project(folder: Path, ttl: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "graphs": {"gated": f"{FIXTURES}:build_gated", "whoami": f"{FIXTURES}:build_whoami"},
        "checkpointer": {"ttl": ttl},
    }
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def ttl_server(tmp_path: Path) -> Iterator[LoomServer]:
    server = new_server(tmp_path / "server", fixtures=False, LOOM_GRAPHS_CONFIG=str(project(tmp_path, TTL)))
    server.start()
    yield server
    server.stop()


async def age(server: LoomServer, thread_id: str) -> None:
    """Move the thread's last update two hours back, past the one-hour TTL, as time would."""

    def write() -> None:
        engine = create_engine(f"sqlite:///{server.data_dir / 'loom.sqlite'}", connect_args={"timeout": 30})
        with engine.begin() as connection:
            key = thread_key(USER, thread_id)
            connection.execute(
                update(ThreadRow).where(ThreadRow.thread_id == key).values(updated_at=now() - timedelta(hours=2))
            )
        engine.dispose()

    await asyncio.to_thread(write)


async def swept(client: LangGraphClient, thread_id: str) -> None:
    """Until the thread answers 404 (the sweeper runs every 0.3 s), at most ``DEADLINE_S``."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            try:
                await client.threads.get(thread_id)
            except httpx.HTTPStatusError as exc:
                assert exc.response.status_code == 404
                return
            await asyncio.sleep(0.1)  # polling an observable condition, bounded above


async def test_an_idle_thread_expires_a_busy_or_recent_one_stays(ttl_server: LoomServer) -> None:
    client = get_client(url=ttl_server.url)
    busy = (await client.threads.create())["thread_id"]
    run = await client.runs.create(busy, "gated", input={"log": []}, stream_mode="custom")
    async with aclosing(client.runs.join_stream(busy, run["run_id"])) as parts:
        await until(parts, is_custom("step_one_done"))  # running, waiting for its gate
    idle, recent = (await client.threads.create())["thread_id"], (await client.threads.create())["thread_id"]
    for thread_id in (idle, recent):
        await client.runs.wait(thread_id, "whoami", input={"request": "who"})
    settings = Settings(data_dir=ttl_server.data_dir)
    artifacts = artifacts_folder(settings, USER, idle)
    await asyncio.to_thread(artifacts.mkdir, parents=True)
    await asyncio.to_thread((artifacts / "chart.png").write_bytes, b"png")

    await age(ttl_server, busy)  # first: the sweep that takes the idle thread has seen the busy one expired too
    await age(ttl_server, idle)
    await swept(client, idle)

    assert (await client.threads.get(recent))["status"] == "idle"
    assert (await client.threads.get(busy))["status"] == "busy"  # as old, but a run holds it
    assert not await asyncio.to_thread(artifacts.exists)
    again = await client.threads.create(thread_id=idle)  # the same id anew: nothing of the old one is left
    assert (await client.threads.get_state(again["thread_id"]))["values"] == {}
    assert await client.runs.list(idle) == []

    open_gate(ttl_server, busy)
    assert (await client.runs.join(busy, run["run_id"]))["log"][-1] == "gate_passed"
    await age(ttl_server, busy)  # its run over, the same age now expires it
    await swept(client, busy)
    assert (await client.threads.get(recent))["thread_id"] == recent


def test_a_bad_ttl_stops_the_server_naming_the_entry(tmp_path: Path) -> None:
    bad = {**TTL, "strategy": "archive"}
    server = new_server(tmp_path / "server", fixtures=False, LOOM_GRAPHS_CONFIG=str(project(tmp_path, bad)))
    with pytest.raises(RuntimeError, match=r"checkpointer\.ttl\.strategy: 'archive'"):
        server.start()


@pytest.mark.parametrize(
    ("ttl", "named"),
    [
        ({"default_ttl": -1}, "checkpointer.ttl.default_ttl"),
        ({"default_ttl": 0}, "checkpointer.ttl.default_ttl"),
        ({"default_ttl": True}, "checkpointer.ttl.default_ttl"),
        ({"default_ttl": 1e12}, "checkpointer.ttl.default_ttl"),
        ({"default_ttl": 60, "sweep_interval_minutes": -5}, "checkpointer.ttl.sweep_interval_minutes"),
        ({"default_ttl": 60, "sweep_limit": 1.5}, "checkpointer.ttl.sweep_limit"),
        ({"default_ttl": 60, "strategy": "keep_latest"}, "checkpointer.ttl.strategy"),
        ({"default_ttl": 60, "ttl": 5}, "checkpointer.ttl.ttl"),
        ([60], "checkpointer.ttl"),
    ],
)
def test_a_bad_entry_is_named(ttl: Any, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_ttl(ttl)


def test_ttl_read_as_langgraph_api_writes_it() -> None:
    assert parse_ttl({"strategy": "delete", "default_ttl": 43200, "sweep_interval_minutes": 60}) == ThreadTTL(43200, 60)
    assert parse_ttl({"default_ttl": 0.5, "sweep_limit": 10}) == ThreadTTL(0.5, 5.0, 10)
    assert parse_ttl({"strategy": "delete"}) is None  # no default_ttl: threads are kept
    assert parse_ttl(None) is None


@pytest.mark.postgres
async def test_concurrent_sweeps_on_postgres_delete_each_thread_once(postgres_url: str, loom_env: Settings) -> None:
    """Scale mode: every worker process sweeps; row locks and the conditional DELETE make them share the work."""
    with scratch_postgres_database(postgres_url, "loom_ttl") as url:
        settings = loom_env.model_copy(update={"checkpoint_url": url, "database_url": url})
        engine, sessions = await open_database(url)
        old, expired = now() - timedelta(hours=2), [thread_key(USER, f"old-{i}") for i in range(40)]
        held, fresh = thread_key(USER, "held"), thread_key(USER, "fresh")
        async with open_checkpointer(settings) as checkpointer:
            async with sessions.begin() as session:
                for key in (*expired, held):
                    session.add(ThreadRow(thread_id=key, owner=USER, metadata_={}, updated_at=old))
                session.add(ThreadRow(thread_id=fresh, owner=USER, metadata_={}))
                await session.flush()  # the threads before the run that refers to one
                session.add(RunRow(run_id=new_id(), thread_id=held, owner=USER, assistant_id="a", graph_id="g"))
            for key in expired:
                config = {"configurable": {"thread_id": key, "checkpoint_ns": ""}}
                await checkpointer.aput(config, empty_checkpoint(), {}, {})  # type: ignore[arg-type]
            ttl = ThreadTTL(60, limit=15)
            passes = await asyncio.gather(*(sweep(ttl, settings, sessions, checkpointer) for _ in range(4)))
            while last := await sweep(ttl, settings, sessions, checkpointer):
                passes.append(last)
            deleted = [key for keys in passes for key in keys]
            assert sorted(deleted) == sorted(expired)  # each once, none twice
            for key in expired:
                config = {"configurable": {"thread_id": key, "checkpoint_ns": ""}}
                assert await checkpointer.aget_tuple(config) is None  # type: ignore[arg-type]
            async with sessions() as session:
                kept = [await session.get(ThreadRow, key) for key in (held, fresh)]
            assert None not in kept  # one with a pending run, one recent
        await engine.dispose()
