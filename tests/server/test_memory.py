"""Memory over many runs: the embedded engine keeps nothing per run beyond its bounded, evicted event streams."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import server.engine.finishing
from loom.settings import get_settings
from server.app import create_app
from server.blocking import blocking_detection
from server.engine.bus import LocalBus
from tests.fixtures.servers import FIXTURE_GRAPHS


@pytest.fixture
def no_blocking_calls() -> Iterator[None]:
    """Replaces the suite's detector here: the app's start-up may block (as under uvicorn), so the test turns
    detection on only around the runs."""
    yield


async def test_memory_stays_flat_over_a_thousand_runs(
    loom_env: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """1,000 stateless runs through the in-process app: every per-run structure is bounded, RSS levels off.

    The structures are checked exactly (finished streams kept = ``stream_keep_finished``, nothing else left
    per run); RSS only against a generous bound, since the allocator and SQLite's page cache move it a little.
    """
    monkeypatch.setenv("LOOM_GRAPHS_CONFIG", str(FIXTURE_GRAPHS))
    monkeypatch.setenv("LOOM_STREAM_KEEP_FINISHED", "50")
    get_settings.cache_clear()
    app = await asyncio.to_thread(create_app)  # reads langgraph.json: done before serving, off the loop
    body = {"assistant_id": "whoami", "input": {"request": "x"}}
    rss: list[float] = []
    async with app.router.lifespan_context(app):  # start-up may block, as under uvicorn; serving may not
        manager, bus = app.state.services.manager, app.state.services.manager.bus
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://loom") as http:

            async def client(share: int) -> None:
                for _ in range(share):
                    answer = await http.post("/runs/wait", json=body)
                    assert answer.json()["user_id"] == "demo", answer.text

            with blocking_detection(enabled=True):
                for _ in range(5):
                    await asyncio.gather(*(client(10) for _ in range(20)))
                    rss.append(await asyncio.to_thread(rss_mib))
        assert isinstance(bus, LocalBus) and len(bus.streams) == 50
        leftovers = [manager._tasks, manager._stoppable, manager._reasons, manager._lost, manager._checked]
        leftovers.append(manager._outcomes)  # each waiter took its run's outcome
        assert all(len(structure) == 0 for structure in leftovers) and len(manager._creating) == 0
    assert rss[-1] - rss[0] < 8, f"RSS MiB after each 200 runs: {rss}"


async def test_outcomes_nobody_waits_for_are_bounded(loom_env: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Background runs nobody waits on leave their outcome for a waiter that never comes: the newest are kept."""
    monkeypatch.setenv("LOOM_GRAPHS_CONFIG", str(FIXTURE_GRAPHS))
    monkeypatch.setattr(server.engine.finishing, "KEPT_OUTCOMES", 5)
    get_settings.cache_clear()
    app = await asyncio.to_thread(create_app)
    async with app.router.lifespan_context(app):
        manager = app.state.services.manager
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://loom") as http:
            body = {"assistant_id": "whoami", "input": {"request": "x"}}
            run_ids = []
            for _ in range(12):  # one at a time: they end in order
                run_ids.append((await http.post("/runs", json=body)).json()["run_id"])
                assert await manager.wait(run_ids[-1]) == "success"
        assert set(manager._outcomes) == set(run_ids[-5:])
        assert manager.take_recorded(run_ids[-1]).status == "success" and run_ids[-1] not in manager._outcomes


def rss_mib() -> float:
    """This process's resident memory (Linux)."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
