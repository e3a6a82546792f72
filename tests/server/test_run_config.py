"""A run's config: bad or internal keys are refused before any run; graphs find the run's ids and metadata
where langgraph-api puts them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from loom.processes import LoomServer
from tests.server.live import BOB, CHART, assert_error

pytestmark = pytest.mark.live


@pytest.mark.parametrize("limit", ["x", 0, -1, 10**6, 2.5, True])
async def test_a_bad_recursion_limit_is_422_before_any_run(alice_http: httpx.AsyncClient, limit: Any) -> None:
    tid = (await alice_http.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "assistant", "input": CHART, "config": {"recursion_limit": limit}}
    answer = await alice_http.post(f"/threads/{tid}/runs", json=body)
    assert "recursion_limit" in assert_error(answer, 422, "invalid_request")["detail"]
    assert (await alice_http.get(f"/threads/{tid}/runs")).json() == []


async def test_langgraph_s_internal_config_keys_are_422(alice_http: httpx.AsyncClient) -> None:
    thread_id = (await alice_http.post("/threads", json={})).json()["thread_id"]
    for key in ("__pregel_checkpointer", "__pregel_durability"):
        body = {"assistant_id": "whoami", "input": {"request": "x"}, "config": {"configurable": {key: "x"}}}
        answer = await alice_http.post(f"/threads/{thread_id}/runs", json=body)
        assert_error(answer, 422, "invalid_request")
        assert key in answer.json()["detail"] and "config.configurable" in answer.json()["detail"]
    assert (await alice_http.get(f"/threads/{thread_id}/runs")).json() == []


async def test_a_graph_finds_the_run_s_ids_where_langgraph_api_puts_them(keyed_server: LoomServer) -> None:
    """Graphs written for langgraph-api read ``configurable.run_id`` and friends; ``user_id`` is the server's."""
    spoofed = {"configurable": {"user_id": "alice", "run_id": "mine"}, "metadata": {"graph_id": "other"}}
    body = {"assistant_id": "config_probe", "input": {}, "config": spoofed}
    async with httpx.AsyncClient(base_url=keyed_server.url, headers=BOB, timeout=60) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        answer = await http.post(f"/threads/{thread_id}/runs/wait", json=body)
        [run] = (await http.get(f"/threads/{thread_id}/runs")).json()
    assert answer.status_code == 200, answer.text
    ids = {"run_id": run["run_id"], "graph_id": "config_probe", "assistant_id": run["assistant_id"], "user_id": "bob"}
    seen = answer.json()["seen"]
    assert (seen["configurable"], seen["metadata"]) == (ids, {**ids, "run_attempt": 1})


async def test_a_run_carries_its_thread_s_metadata_as_langgraph_api_merges_it(keyed_server: LoomServer) -> None:
    """A tag the client put on the thread reaches every run's ``config["metadata"]`` and the run's own metadata;
    the run's metadata wins a clash, and the assistant id cannot be overridden."""
    thread_tags = {"tenant": "acme", "channel": "email"}
    run_tags = {"channel": "web", "assistant_id": "spoofed"}
    async with httpx.AsyncClient(base_url=keyed_server.url, headers=BOB, timeout=60) as http:
        thread_id = (await http.post("/threads", json={"metadata": thread_tags})).json()["thread_id"]
        body = {"assistant_id": "config_probe", "input": {}, "metadata": run_tags}
        answer = await http.post(f"/threads/{thread_id}/runs/wait", json=body)
        [run] = (await http.get(f"/threads/{thread_id}/runs")).json()
    assert answer.status_code == 200, answer.text
    assert answer.json()["seen"]["labels"] == {"tenant": "acme", "channel": "web"}
    assert {key: run["metadata"].get(key) for key in ("tenant", "channel")} == {"tenant": "acme", "channel": "web"}
    assert run["metadata"]["assistant_id"] == run["assistant_id"] != "spoofed"
    assert answer.json()["seen"]["metadata"]["assistant_id"] == run["assistant_id"]
