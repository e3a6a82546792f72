"""Scale mode on real PostgreSQL and Redis: two API replicas and two worker processes share one queue.

Runs are created through either API, executed by whichever worker claims them, streamed and cancelled
through the other API; a worker SIGKILLed mid-run loses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from loom.processes import LoomServer, scratch_postgres_database
from tests.conftest import require_postgres, require_redis
from tests.server.live import (
    FIXTURE_INPUT,
    collect,
    finished,
    is_custom,
    new_server,
    open_gate,
    start_gated,
    step_one_count,
    until,
    wait_for_state,
)

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.redis]
DONE = ["step_one", "gate_passed"]


@dataclass
class Cluster:
    apis: list[LoomServer]
    workers: list[LoomServer]

    def client(self, index: int) -> LangGraphClient:
        return get_client(url=self.apis[index].url)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A PostgreSQL database of this module's own, dropped afterwards."""
    with scratch_postgres_database(require_postgres(), "loom_scale") as url:
        yield url


@pytest.fixture(scope="module")
def cluster(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two ``loom serve --no-workers`` and two ``loom worker --concurrency 2`` on one data dir (the gates)."""
    data_dir: Path = tmp_path_factory.mktemp("scale")
    env = {
        "LOOM_DATABASE_URL": database,
        "LOOM_CHECKPOINT_URL": database,
        "LOOM_REDIS_URL": require_redis(),
        "LOOM_RUN_LEASE_S": "2",
    }
    processes: list[LoomServer] = []

    def start(role: str, extra: list[str] | None = None) -> LoomServer:
        template = new_server(data_dir, **env)
        process = LoomServer(data_dir, template.env, args=extra, role=role).start()
        processes.append(process)
        return process

    try:
        apis = [start("api") for _ in range(2)]
        workers = [start("worker", ["--concurrency", "2"]) for _ in range(2)]
        yield Cluster(apis, workers)
    finally:
        for process in processes:
            process.stop()


async def test_cancel_through_the_other_api_stops_the_run_on_its_worker(cluster: Cluster) -> None:
    first, second = cluster.client(0), cluster.client(1)
    thread = (await first.threads.create())["thread_id"]
    run = await start_gated(first, thread)
    await second.runs.cancel(thread, run["run_id"], wait=True)
    assert (await first.runs.get(thread, run["run_id"]))["status"] == "cancelled"
    assert (await first.threads.get(thread))["status"] == "idle"
    assert (await second.threads.get_state(thread))["values"]["log"] == ["step_one"]


async def test_interrupt_and_rollback_through_the_other_api_leave_the_thread_idle(cluster: Cluster) -> None:
    first, second = cluster.client(0), cluster.client(1)
    thread = (await first.threads.create())["thread_id"]
    replaced = await start_gated(first, thread)
    newer = await second.runs.create(thread, "gated", input=FIXTURE_INPUT, multitask_strategy="interrupt")
    assert (await first.runs.get(thread, replaced["run_id"]))["status"] == "interrupted"
    open_gate(cluster.apis[0], thread)
    assert (await finished(first, thread, newer["run_id"]))["status"] == "success"
    assert (await second.threads.get(thread))["status"] == "idle"
    assert (await second.threads.get_state(thread))["values"]["log"] == ["step_one", *DONE]

    fresh = (await first.threads.create())["thread_id"]
    rolled = await start_gated(first, fresh)
    newer = await second.runs.create(fresh, "gated", input=FIXTURE_INPUT, multitask_strategy="rollback")
    assert (await first.runs.get(fresh, rolled["run_id"]))["status"] == "cancelled"
    open_gate(cluster.apis[0], fresh)
    assert (await finished(second, fresh, newer["run_id"]))["status"] == "success"
    assert (await first.threads.get_state(fresh))["values"]["log"] == DONE, "the rolled-back run left nothing"
    assert (await first.threads.get(fresh))["status"] == "idle"


async def test_thirty_runs_survive_a_worker_kill_and_streams_rejoin_through_the_other_api(cluster: Cluster) -> None:
    first, second = cluster.client(0), cluster.client(1)
    threads = [(await first.threads.create())["thread_id"] for _ in range(10)]
    runs: list[tuple[str, str]] = []
    for round_ in range(3):
        for index, thread in enumerate(threads):
            client = first if (round_ + index) % 2 == 0 else second
            created = await client.runs.create(
                thread, "gated", input=FIXTURE_INPUT, stream_mode=["custom", "updates", "values"]
            )
            runs.append((thread, created["run_id"]))
    watched_thread, watched = runs[0]
    async with aclosing(first.runs.join_stream(watched_thread, watched)) as parts:
        before = await until(parts, is_custom("step_one_done"))

    running = [(t, r) for t, r in runs if (await first.runs.get(t, r))["status"] == "running"]
    assert len(running) == 4, "two workers × two slots, one run per thread"
    for thread, _ in running:  # their first node is checkpointed: a takeover must not run it again
        await wait_for_state(first, thread, lambda state: state["next"] == ["wait_for_gate"])
    cluster.workers[0].kill()
    for thread in threads:
        open_gate(cluster.apis[0], thread)

    rejoined = await collect(second.runs.join_stream(watched_thread, watched, last_event_id=before[-1].id))
    everything = await collect(first.runs.join_stream(watched_thread, watched))
    assert [(p.id, p.event, p.data) for p in before + rejoined] == [(p.id, p.event, p.data) for p in everything]
    assert rejoined[-1].event == "end" and rejoined[-1].data["status"] == "success"

    outcomes = [await finished(second, thread, run_id) for thread, run_id in runs]
    assert [run["status"] for run in outcomes] == ["success"] * 30
    assert any(run["attempt"] == 2 for run in outcomes), "the killed worker's runs were taken over"
    for thread in threads:
        assert step_one_count(cluster.apis[0], thread) == 3, "each run's side effect happened once"
        assert (await first.threads.get_state(thread))["values"]["log"] == DONE * 3
        assert (await second.threads.get(thread))["status"] == "idle"


async def test_a_cron_fires_each_due_run_exactly_once_across_two_workers(cluster: Cluster) -> None:
    first, second = cluster.client(0), cluster.client(1)
    thread = (await first.threads.create())["thread_id"]
    open_gate(cluster.apis[0], thread)
    cron = await first.crons.create_for_thread(thread, "gated", schedule="* * * * * */2", input=FIXTURE_INPUT)
    assert [c["cron_id"] for c in await second.crons.search(thread_id=thread)] == [cron["cron_id"]]
    assert await second.crons.count(thread_id=thread) == 1
    async with asyncio.timeout(60):  # no event announces a firing: poll the runs list
        while len(await first.runs.list(thread, limit=100)) < 3:
            await asyncio.sleep(0.2)
    await second.crons.delete(cron["cron_id"])
    assert await first.crons.count(thread_id=thread) == 0
    fired = await first.runs.list(thread, limit=100)
    outcomes = [await finished(second, thread, run["run_id"]) for run in fired]
    assert {run["status"] for run in outcomes} == {"success"}
    scheduled = [run["metadata"]["scheduled_at"] for run in fired]
    assert len(set(scheduled)) == len(scheduled), "two workers never fire the same due time twice"
    assert all(run["metadata"]["cron_id"] == cron["cron_id"] for run in fired)
