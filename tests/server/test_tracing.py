"""One connected trace per run across processes: an API replica and two workers on PostgreSQL + Redis.

A local OTLP/HTTP collector decodes what the processes export; a LangSmith stub records what LangChain's
own tracer sends in the same runs, so both can be on together. Spans carry ids, never message content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import LoomServer, scratch_postgres_database
from tests.fixtures.collectors import OtlpCollector, Recorder, Span
from tests.fixtures.databases import require_postgres, require_redis
from tests.fixtures.servers import new_server

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.redis]
OBS_GRAPHS = Path(__file__).parent / "langgraph.obs.json"
SECRET_INPUT = "the launch codes are 0000"
RUNS = 4


@dataclass
class Cluster:
    api: LoomServer
    workers: list[LoomServer]
    collector: OtlpCollector
    langsmith: Recorder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("tracing")
    with (
        scratch_postgres_database(require_postgres(), "loom_tracing") as database,
        OtlpCollector() as collector,
        Recorder() as langsmith,
    ):
        env = {
            "LOOM_GRAPHS_CONFIG": str(OBS_GRAPHS),
            "LOOM_DATABASE_URL": database,
            "LOOM_CHECKPOINT_URL": database,
            "LOOM_REDIS_URL": require_redis(),
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms instead of 5 s
            "LANGSMITH_TRACING": "true",
            "LANGSMITH_ENDPOINT": langsmith.url,
            "LANGSMITH_API_KEY": "lsv2-test-key",
        }
        processes: list[LoomServer] = []
        try:
            for role in ("api", "worker", "worker"):
                processes.append(new_server(data_dir, fixtures=False, role=role, **env).start())
            yield Cluster(processes[0], processes[1:], collector, langsmith)
        finally:
            for process in processes:
                process.stop()


def by_run(spans: list[Span], run_id: str) -> list[Span]:
    """Every span of the trace that holds this run's attempt span."""
    traces = {span.trace_id for span in spans if span.attributes.get("loom.run_id") == run_id}
    return [span for span in spans if span.trace_id in traces]


def complete(spans: list[Span]) -> bool:
    names = {span.name for span in spans}
    return {"POST /threads/{thread_id}/runs", "run.attempt traced", "node leaf"} <= names and all(
        not span.parent_id or any(other.span_id == span.parent_id for other in spans) for span in spans
    )


async def test_each_run_is_one_connected_trace_from_the_api_to_its_worker(cluster: Cluster) -> None:
    client = get_client(url=cluster.api.url)
    runs: list[tuple[str, str]] = []
    for _ in range(RUNS):
        thread = (await client.threads.create())["thread_id"]
        message = {"role": "user", "content": SECRET_INPUT}
        run = await client.runs.create(thread, "traced", input={"messages": [message]})
        await client.runs.join(thread, run["run_id"])
        runs.append((thread, run["run_id"]))

    def all_complete() -> bool:
        spans = cluster.collector.spans()
        return all(complete(by_run(spans, run_id)) for _, run_id in runs)

    await asyncio.to_thread(cluster.collector.wait_for, all_complete, "a complete trace for every run")
    spans = cluster.collector.spans()
    worker_pids: set[int] = set()
    for thread, run_id in runs:
        trace = by_run(spans, run_id)
        assert len({span.trace_id for span in trace}) == 1, "one trace per run"
        named = {span.name: span for span in trace}
        http = named["POST /threads/{thread_id}/runs"]
        assert http.parent_id == "" and http.resource["loom.role"] == "api"
        queued, attempt = named["run.queued"], named["run.attempt traced"]
        assert queued.parent_id == attempt.parent_id == http.span_id, "the worker continues the request's trace"
        assert attempt.resource["loom.role"] == "worker"
        assert attempt.resource["process.pid"] != http.resource["process.pid"]
        worker_pids.add(attempt.resource["process.pid"])
        assert attempt.attributes["loom.thread_id"] == thread
        assert attempt.attributes["loom.user_id"] == "demo"
        assert attempt.attributes["loom.assistant_id"]
        assert attempt.attributes["loom.status"] == "success"

        children = {span.span_id: span for span in trace}
        parent = {span.name: children[span.parent_id].name for span in trace if span.parent_id in children}
        assert parent["node agent"] == parent["node tools"] == parent["node inner"] == "run.attempt traced"
        assert parent["model fake"] == "node agent" and parent["tool lookup"] == "node tools"
        assert parent["node leaf"] == "node inner", "a subgraph's nodes nest under the node that runs it"
        model = named["model fake"]
        assert model.attributes["gen_ai.usage.output_tokens"] == 1 and model.attributes["loom.run_id"] == run_id
        tool = named["tool lookup"]
        assert tool.attributes["loom.tool.permission"] == "read" and tool.attributes["loom.outcome"] == "success"
        assert not any(SECRET_INPUT in str(span.attributes) for span in trace), "no content unless asked"
    assert worker_pids, "spans came from the worker processes"

    def langsmith_got_runs() -> bool:
        sent = b"".join(body for path, body in list(cluster.langsmith.posts) if path.startswith("/runs"))
        return all(run_id.encode() in sent for _, run_id in runs)

    await asyncio.to_thread(cluster.langsmith.wait_for, langsmith_got_runs, "LangSmith runs")
    assert_worker_metrics(cluster)


def assert_worker_metrics(cluster: Cluster) -> None:
    """Each worker answers /metrics for the runs it executed; together, every run."""
    finished = 0.0
    for worker in cluster.workers:
        text = httpx.get(f"{worker.url}/metrics").text
        for line in text.splitlines():
            if line.startswith('loom_runs_total{graph="traced",status="success"}'):
                finished += float(line.split()[-1])
    assert finished == RUNS
    assert "loom_runs_total{" not in httpx.get(f"{cluster.api.url}/metrics").text, "the API runs nothing"
