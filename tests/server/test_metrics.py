"""``/metrics`` on a live embedded server after runs that succeed, fail, retry and wait for a human.

Values are exact: the fake model counts words as tokens, and each run's nodes are known.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from loom.processes import LoomServer
from tests.fixtures.servers import serving
from tests.server.live import open_gate

pytestmark = pytest.mark.live
OBS_GRAPHS = Path(__file__).parent / "langgraph.obs.json"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    data_dir = tmp_path_factory.mktemp("metrics")
    env = {"LOOM_GRAPHS_CONFIG": str(OBS_GRAPHS), "LOOM_RUN_RETRY_BUDGET": "2", "LOOM_SERVER_CONCURRENCY": "1"}
    with serving(data_dir, False, **env) as live:
        yield live


def scrape(server: LoomServer) -> Samples:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_runs_nodes_models_tools_retries_and_interrupts_are_counted(server: LoomServer) -> None:
    client = get_client(url=server.url)
    for graph, payload in [
        ("traced", {"messages": [{"role": "user", "content": "hello there"}]}),
        ("failing", {"log": []}),
        ("flaky", {"log": []}),
        ("approval", {"request": "a refund", "decision": ""}),
    ]:
        thread = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread, graph, input=payload, raise_error=False)
    samples = scrape(server)

    assert value(samples, "loom_runs_total", graph="traced", status="success") == 1
    assert value(samples, "loom_runs_total", graph="failing", status="error") == 1
    assert value(samples, "loom_runs_total", graph="flaky", status="error") == 1
    assert value(samples, "loom_runs_total", graph="approval", status="interrupted") == 1
    assert value(samples, "loom_run_duration_seconds_count", graph="traced", status="success") == 1
    assert value(samples, "loom_run_duration_seconds_bucket", graph="traced", status="success", le="+Inf") == 1
    assert value(samples, "loom_queue_wait_seconds_count", graph="approval") == 1
    assert value(samples, "loom_queue_depth", status="pending") == 0
    assert value(samples, "loom_queue_depth", status="running") == 0
    assert value(samples, "loom_threads_interrupted") == 1

    nodes = {"agent": 2, "tools": 1, "inner": 1, "leaf": 1}
    for node, count in nodes.items():
        assert value(samples, "loom_node_duration_seconds_count", graph="traced", node=node, outcome="success") == count
    assert value(samples, "loom_node_duration_seconds_count", graph="failing", node="explode", outcome="error") == 1
    interrupted = {"graph": "approval", "node": "ask_approval", "outcome": "interrupted"}
    assert value(samples, "loom_node_duration_seconds_count", **interrupted) == 1
    assert value(samples, "loom_node_retries_total", graph="flaky", node="call_flaky_provider") == 2  # the budget

    # the fake model counts words: "hello there" (2), then 2 + "" + "found the plan" (3) in; one word out each
    assert value(samples, "loom_model_calls_total", model="fake", node="agent", outcome="success") == 2
    assert value(samples, "loom_model_tokens_total", model="fake", node="agent", type="input") == 7
    assert value(samples, "loom_model_tokens_total", model="fake", node="agent", type="output") == 2
    assert value(samples, "loom_model_duration_seconds_count", model="fake") == 2
    spend = {labels for name, labels in samples if name == "loom_model_cost_usd_total"}
    assert frozenset({"model": "fake:fake", "node": "agent"}.items()) in spend  # present, and free: 0.0
    assert value(samples, "loom_tool_calls_total", tool="lookup", permission="read", outcome="success") == 1

    wait = {"method": "POST", "route": "/threads/{thread_id}/runs/wait", "status": "200"}
    assert value(samples, "loom_http_requests_total", **wait) == 4
    assert value(samples, "loom_http_requests_total", method="POST", route="/threads", status="200") == 4
    assert value(samples, "loom_http_request_duration_seconds_count", method="POST", route="/threads") == 4
    assert value(samples, "loom_active_streams") == 0


async def test_an_open_stream_and_a_queued_run_are_counted(server: LoomServer) -> None:
    client = get_client(url=server.url)
    thread, other = [(await client.threads.create())["thread_id"] for _ in range(2)]
    held = {"request": "a refund", "decision": "", "hold": True}
    parts = client.runs.stream(thread, "approval", input=held, stream_mode="updates")
    first = await anext(parts)
    assert first.event == "metadata"
    queued = await client.runs.create(other, "traced", input={"messages": [{"role": "user", "content": "hi"}]})
    samples = scrape(server)
    assert value(samples, "loom_active_streams") == 1
    assert value(samples, "loom_queue_depth", status="pending") == 1, "the one slot is taken by the held run"
    waits = value(samples, "loom_queue_wait_seconds_count", graph="traced")
    open_gate(server, thread)
    async for _ in parts:
        pass
    await client.runs.join(other, queued["run_id"])  # claimed from the table once the slot is free
    assert (await client.runs.get(other, queued["run_id"]))["status"] == "success"
    samples = scrape(server)
    assert value(samples, "loom_active_streams") == 0
    assert value(samples, "loom_queue_wait_seconds_count", graph="traced") == waits + 1


def test_unknown_paths_are_one_label_and_metrics_is_not_in_the_schema(server: LoomServer) -> None:
    for path in ("/no/such/path/1", "/no/such/path/2"):
        assert httpx.get(f"{server.url}{path}").status_code == 404
    assert value(scrape(server), "loom_http_requests_total", method="GET", route="unmatched", status="404") == 2
    assert "/metrics" not in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    with serving(tmp_path, LOOM_METRICS="false") as live:
        assert httpx.get(f"{live.url}/metrics").status_code == 404
