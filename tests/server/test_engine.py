"""The embedded run engine under load and crashes: admission never 500s, nothing accepted is lost, a restart drains."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from server.engine.bus import LocalBus
from tests.fixtures.servers import new_server, serving
from tests.server.live import DEADLINE_S, FIXTURE_INPUT, finished, open_gate, start_gated

pytestmark = pytest.mark.live


async def test_a_burst_gets_only_runs_or_429_and_every_accepted_run_ends(tmp_path: Path) -> None:
    """200 requests from 12 clients against a queue of 4: each is a committed run or a 429 with Retry-After."""
    with serving(tmp_path / "burst", LOOM_SERVER_QUEUE_SIZE="4", LOOM_SERVER_CONCURRENCY="2") as server:
        threads = [str(uuid.uuid4()) for _ in range(20)]
        for thread_id in threads:
            open_gate(server, thread_id)
        requests = iter(range(200))
        answers: list[httpx.Response] = []

        async def client_loop(http: httpx.AsyncClient) -> None:
            for index in requests:
                body = {"assistant_id": "gated", "input": FIXTURE_INPUT, "if_not_exists": "create"}
                answers.append(await http.post(f"/threads/{threads[index % len(threads)]}/runs", json=body))

        async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE_S) as http:
            await asyncio.gather(*(client_loop(http) for _ in range(12)))
            codes = {response.status_code for response in answers}
            assert codes <= {200, 429}, [r.text for r in answers if r.status_code not in (200, 429)]
            refused = [r for r in answers if r.status_code == 429]
            assert refused and all(r.headers.get("retry-after") for r in refused)
            accepted = [r.json() for r in answers if r.status_code == 200]
            assert len(accepted) + len(refused) == 200 and accepted
            client = get_client(url=server.url)
            statuses = [(await finished(client, run["thread_id"], run["run_id"]))["status"] for run in accepted]
        assert statuses == ["success"] * len(accepted)


async def test_a_crash_with_more_runs_pending_than_the_queue_holds_restarts_and_drains(tmp_path: Path) -> None:
    data_dir = tmp_path / "crash-queue"
    first = new_server(data_dir, LOOM_SERVER_QUEUE_SIZE="20", LOOM_SERVER_CONCURRENCY="1").start()
    threads: list[str] = []
    runs: list[str] = []
    try:
        client = get_client(url=first.url)
        for _ in range(12):
            thread_id = (await client.threads.create())["thread_id"]
            threads.append(thread_id)
            if not runs:
                runs.append((await start_gated(client, thread_id))["run_id"])  # the one running, mid-graph
            else:
                runs.append((await client.runs.create(thread_id, "gated", input=FIXTURE_INPUT))["run_id"])
    finally:
        first.kill()

    env = {"LOOM_SERVER_QUEUE_SIZE": "2", "LOOM_SERVER_CONCURRENCY": "2", "LOOM_RUN_LEASE_S": "1"}
    with serving(data_dir, **env) as second:
        client = get_client(url=second.url)
        for thread_id in threads:
            open_gate(second, thread_id)
        done = [await finished(client, thread_id, run_id) for thread_id, run_id in zip(threads, runs, strict=True)]
        assert [run["status"] for run in done] == ["success"] * len(runs)
        assert done[0]["attempt"] == 2 and {run["attempt"] for run in done[1:]} == {1}
        assert [(await client.threads.get(thread_id))["status"] for thread_id in threads] == ["idle"] * len(threads)


async def test_finished_event_streams_are_evicted_so_memory_stays_bounded(loom_env: object) -> None:
    """Each run's stream is kept until it expires or ``stream_keep_finished`` newer ones ended."""
    from loom.settings import Settings

    bus = LocalBus(Settings(stream_keep_finished=10, stream_ttl_s=3600))
    for index in range(500):
        run_id = f"run-{index}"
        await bus.publish(run_id, "values", {"index": index})
        await bus.publish(run_id, "end", {"status": "success"})
        await bus.close(run_id)
    assert len(bus.streams) == 10
    assert await bus.has("run-499") and not await bus.has("run-0")
    replay = [event async for event in bus.follow("run-499", 0, 1.0) if event is not None]
    assert [event.name for event in replay] == ["values", "end"], "a recently finished run can still be joined"

    clock = [0.0]
    expiring = LocalBus(Settings(stream_keep_finished=10, stream_ttl_s=60), clock=lambda: clock[0])
    await expiring.publish("old", "end", {"status": "success"})
    await expiring.close("old")
    assert await expiring.has("old")
    clock[0] = 61.0
    assert not await expiring.has("old")
