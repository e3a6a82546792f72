"""Scale mode on real PostgreSQL and Redis: two API replicas and two worker processes share one queue.

Runs are created through either API, executed by whichever worker claims them, streamed and cancelled
through the other API; a worker SIGKILLed mid-run loses nothing and repeats nothing: every refund is
recorded once in the support graph's payments table, and no run is ever executed by two workers at once.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from sqlalchemy import create_engine, text

from loom.processes import LoomServer, scratch_postgres_database
from services.stores.accounts import IdempotencyKey
from tests.fixtures.databases import require_postgres, require_redis
from tests.fixtures.servers import new_server
from tests.server.live import (
    DONE,
    FIXTURE_INPUT,
    collect,
    finished,
    gates,
    is_custom,
    open_gate,
    start_gated,
    step_one_count,
    until,
    wait_for_state,
)

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.redis]
REFUNDED = ["step_one", "refunded", "gate_passed"]
REFUND_COUNTS = text("SELECT idempotency_key, count(*) FROM payments WHERE kind = 'refund' GROUP BY idempotency_key")


@dataclass
class Cluster:
    apis: list[LoomServer]
    workers: list[LoomServer]
    database: str

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
        process = new_server(data_dir, args=extra or (), role=role, **env).start()
        processes.append(process)
        return process

    try:
        apis = [start("api") for _ in range(2)]
        workers = [start("worker", ["--concurrency", "2"]) for _ in range(2)]
        yield Cluster(apis, workers, database)
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


async def test_one_idempotency_key_sent_at_once_through_both_apis_makes_one_run(cluster: Cluster) -> None:
    """A client retrying a create through two replicas at once gets one run back every time, never a 500."""
    threads = [(await cluster.client(0).threads.create())["thread_id"] for _ in range(4)]
    body = {"assistant_id": "gated", "input": FIXTURE_INPUT}

    async def retried(http: httpx.AsyncClient, thread: str) -> list[httpx.Response]:
        open_gate(cluster.apis[0], thread)
        urls = [f"{cluster.apis[i % 2].url}/threads/{thread}/runs" for i in range(12)]
        headers = {"Idempotency-Key": f"retry-{thread}"}
        return list(await asyncio.gather(*(http.post(url, json=body, headers=headers) for url in urls)))

    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(*(retried(http, thread) for thread in threads))
    for thread, sent in zip(threads, answers, strict=True):
        assert [a.status_code for a in sent] == [200] * 12, [a.text for a in sent if a.status_code != 200]
        assert len({a.json()["run_id"] for a in sent}) == 1
        assert len(await cluster.client(1).runs.list(thread)) == 1


async def test_thirty_runs_survive_a_worker_kill_and_streams_rejoin_through_the_other_api(cluster: Cluster) -> None:
    first, second = cluster.client(0), cluster.client(1)
    threads = [(await first.threads.create())["thread_id"] for _ in range(10)]
    runs: list[tuple[str, str]] = []
    for round_ in range(3):
        for index, thread in enumerate(threads):
            client = first if (round_ + index) % 2 == 0 else second
            created = await client.runs.create(
                thread, "refunding", input=FIXTURE_INPUT, stream_mode=["custom", "updates", "values"]
            )
            runs.append((thread, created["run_id"]))
    watched_thread, watched = runs[0]
    async with aclosing(first.runs.join_stream(watched_thread, watched)) as parts:
        before = await until(parts, is_custom("step_one_done"))

    running = [(t, r) for t, r in runs if (await first.runs.get(t, r))["status"] == "running"]
    assert len(running) == 4, "two workers × two slots, one run per thread"
    for thread, _ in running:  # refunded and checkpointed: a takeover must not run those nodes again
        await wait_for_state(first, thread, lambda state: state["next"] == ["wait_for_gate"])
    killed = cluster.workers[0]
    assert killed.process is not None
    killed_pid = killed.process.pid
    killed.kill()
    killed_at = time.monotonic_ns()
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
        assert step_one_count(cluster.apis[0], thread) == 3, "each run's first node ran once"
        assert (await first.threads.get_state(thread))["values"]["log"] == REFUNDED * 3
        assert (await second.threads.get(thread))["status"] == "idle"
    keys = {IdempotencyKey(thread, run_id).value for thread, run_id in runs}
    assert await asyncio.to_thread(refunds_by_key, cluster.database, keys) == dict.fromkeys(keys, 1)
    executions = parse_executions(gates(cluster.apis[0]) / "executions.log", killed_pid, killed_at)
    assert set(executions) == {run_id for _, run_id in runs}
    for run_id, spans in executions.items():
        for earlier, later in itertools.pairwise(sorted(spans)):
            assert earlier[1] <= later[0], f"run {run_id} was executed by two workers at once: {spans}"
    assert any(len(spans) == 2 for spans in executions.values()), "the killed worker's runs ran again elsewhere"


def refunds_by_key(database: str, keys: set[str]) -> dict[str, int]:
    """Refund rows in the support graph's payments table, per idempotency key of this test's runs."""
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(REFUND_COUNTS)
            return {key: int(count) for key, count in rows if key in keys}
    finally:
        engine.dispose()


def parse_executions(log: Path, killed_pid: int, killed_at: int) -> dict[str, list[tuple[int, int]]]:
    """Each run's executions of its waiting node as (begin, end) in monotonic ns, from every worker's log lines.

    An execution never ended only if its worker was the one killed: it lasted at most until the kill.
    """
    begun: dict[tuple[str, str], int] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    for line in log.read_text().splitlines():
        run_id, pid, what, at = line.split()
        if what == "begin":
            begun[(run_id, pid)] = int(at)
        else:
            spans.setdefault(run_id, []).append((begun.pop((run_id, pid)), int(at)))
    for (run_id, pid), at in begun.items():
        assert int(pid) == killed_pid, f"run {run_id} was left unfinished by worker {pid}, which was not killed"
        spans.setdefault(run_id, []).append((at, killed_at))
    return spans


async def test_wait_answers_the_final_values_of_a_run_executed_on_a_worker(cluster: Cluster) -> None:
    """The API replicas run nothing: the values come from the run's row, written by the worker that ran it."""
    first, second = cluster.client(0), cluster.client(1)
    expected = {"request": "x", "user_id": "demo", "permissions": ["read"]}
    assert await first.runs.wait(None, "whoami", input={"request": "x"}) == expected
    thread = (await second.threads.create())["thread_id"]
    assert await second.runs.wait(thread, "whoami", input={"request": "x"}) == expected
    run = (await first.runs.list(thread))[0]
    assert await first.runs.join(thread, run["run_id"]) == expected


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
