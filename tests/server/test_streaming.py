"""Every graph in langgraph.json streamed over SSE and NDJSON by a real server on the fake model."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.schema import StreamPart

from loom.processes import LoomServer
from tests.fixtures.servers import PRODUCTION_GRAPHS, serving
from tests.server.live import collect, ndjson

pytestmark = pytest.mark.live

BLOG = {"messages": [{"role": "user", "content": "write a short blog post about green tea"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("streaming"), fixtures=False) as live:
        yield live


def graph_ids() -> list[str]:
    return sorted(json.loads(PRODUCTION_GRAPHS.read_text())["graphs"])


def assert_framing(parts: list[StreamPart], status: str = "success", errors: tuple[str, ...] = ()) -> None:
    """metadata first, end last, ids strictly increasing, no error on the way but ``errors`` (by name)."""
    assert parts[0].event == "metadata" and parts[0].data["attempt"] == 1
    assert parts[-1].event == "end" and parts[-1].data["status"] == status
    ids = [int(part.id or 0) for part in parts]
    assert ids == sorted(set(ids)) and ids[0] >= 1
    assert [part.data["error"] for part in parts if part.event == "error"] == list(errors)


async def test_assistant_stream_carries_route_updates_tokens_and_end(server: LoomServer) -> None:
    client = get_client(url=server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    modes = ["values", "updates", "messages-tuple", "custom"]
    parts = await collect(client.runs.stream(tid, "assistant", input=BLOG, stream_mode=modes))

    assert_framing(parts)
    run_id = parts[0].data["run_id"]
    routes = [p.data for p in parts if p.event == "custom" and p.data.get("event") == "route"]
    assert [(r["specialist"], r["stage"]) for r in routes] == [("content_writer", "keywords")]
    assert [next(iter(p.data)) for p in parts if p.event == "updates"] == ["memory", "router", "content_writer"]

    tokens = [p.data for p in parts if p.event == "messages"]
    assert len(tokens) > 1, "the reply streams token by token"
    assert {metadata["langgraph_node"] for _chunk, metadata in tokens} == {"content_writer"}
    assert {metadata["thread_id"] for _chunk, metadata in tokens} == {tid}  # the id it chose, not the owner's key
    final = [p.data for p in parts if p.event == "values"][-1]
    reply = final["messages"][-1]
    assert reply["type"] == "ai" and reply["content"]
    assert "".join(chunk["content"] for chunk, _ in tokens) == reply["content"]
    assert final["route"]["specialist"] == "content_writer"

    end = parts[-1].data
    assert end["interrupts"] == [] and end["checkpoint"]["checkpoint_id"]
    state = await client.threads.get_state(tid)
    assert state["checkpoint"]["checkpoint_id"] == end["checkpoint"]["checkpoint_id"]
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai"]
    run = await client.runs.get(tid, run_id)
    assert run["status"] == "success"
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_every_graph_streams_to_success(server: LoomServer) -> None:
    client = get_client(url=server.url)
    assistants = await client.assistants.search(limit=100)
    assert sorted(a["graph_id"] for a in assistants) == graph_ids()
    for assistant in assistants:
        thread = await client.threads.create()
        parts = await collect(
            client.runs.stream(
                thread["thread_id"], assistant["assistant_id"], input=BLOG, stream_mode=["updates", "custom", "values"]
            )
        )
        if assistant["graph_id"] == "plan_execute":  # the echo model writes no plan: the reply says so, the run fails
            assert_framing(parts, "error", ("PlanFailed",))
        else:
            assert_framing(parts)
        assert any(p.event == "updates" for p in parts), assistant["graph_id"]
        final = [p.data for p in parts if p.event == "values"][-1]
        assert final["messages"][0]["content"] == BLOG["messages"][0]["content"]
        assert final["messages"][-1]["type"] == "ai", assistant["graph_id"]


async def test_subgraph_events_are_namespaced(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    plain = await collect(client.runs.stream(tid, "supervisor", input=BLOG, stream_mode="updates"))
    nested = await collect(
        client.runs.stream(tid, "supervisor", input=BLOG, stream_mode="updates", stream_subgraphs=True)
    )
    assert_framing(plain)
    assert_framing(nested)
    assert not [p.event for p in plain if "|" in p.event]
    namespaced = [p.event for p in nested if "|" in p.event]
    assert namespaced and all(name.startswith("updates|") for name in namespaced)
    workers = {name.split("|")[1].split(":")[0] for name in namespaced}
    assert workers <= {"researcher", "writer", "reviewer"} and workers


async def test_debug_checkpoints_name_their_checkpoint_and_parent(server: LoomServer) -> None:
    """Studio's timeline reads ``payload.checkpoint`` and ``parent_checkpoint``, as langgraph-api sends them."""
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    calendar = {"messages": [{"role": "user", "content": "Search my calendar for AI events"}]}
    parts = await collect(client.runs.stream(tid, "assistant", input=calendar, stream_mode=["debug", "updates"]))
    assert_framing(parts)

    checkpoints = [p.data["payload"] for p in parts if p.event == "debug" and p.data["type"] == "checkpoint"]
    assert len(checkpoints) >= 3
    for payload in checkpoints:
        assert payload["checkpoint"]["thread_id"] == tid
        assert payload["checkpoint"]["checkpoint_id"] == payload["config"]["configurable"]["checkpoint_id"]
    assert checkpoints[0]["parent_checkpoint"] is None
    for earlier, later in itertools.pairwise(checkpoints):
        assert later["parent_checkpoint"]["checkpoint_id"] == earlier["checkpoint"]["checkpoint_id"]


async def test_stateless_runs_stream_and_wait(server: LoomServer) -> None:
    client = get_client(url=server.url)
    parts = await collect(client.runs.stream(None, "assistant", input=BLOG, stream_mode="updates"))
    assert_framing(parts)
    result: Any = await client.runs.wait(None, "assistant", input=BLOG)
    assert result["messages"][-1]["type"] == "ai"
    assert result["route"]["specialist"] == "content_writer"


async def test_ndjson_stream_has_the_same_events(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    body = {"assistant_id": "assistant", "input": BLOG, "stream_mode": ["updates", "custom"]}
    headers = {"Accept": "application/x-ndjson"}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        response = await http.post(f"/threads/{tid}/runs/stream", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = ndjson(response.text)
    assert lines[0]["event"] == "metadata"
    assert lines[-1] == {"id": lines[-1]["id"], "event": "end", "data": lines[-1]["data"]}
    assert lines[-1]["data"]["status"] == "success"
    assert [line["id"] for line in lines] == list(range(1, len(lines) + 1))
    updated = [next(iter(line["data"])) for line in lines if line["event"] == "updates"]
    assert updated == ["memory", "router", "content_writer"]
    assert any(line["event"] == "custom" and line["data"]["event"] == "route" for line in lines)

    joined = await collect(client.runs.join_stream(tid, lines[0]["data"]["run_id"]))
    assert [(int(p.id or 0), p.event, p.data) for p in joined] == [(x["id"], x["event"], x["data"]) for x in lines]


async def test_system_routes_and_assistant_introspection(server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await http.get("/ok")).json() == {"ok": True}
        info = (await http.get("/info")).json()
        assert info["graphs"] == graph_ids()
        docs = await http.get("/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        paths = (await http.get("/openapi.json")).json()["paths"]
        assert {"/threads/{thread_id}/runs/stream", "/runs/wait", "/assistants/search"} <= set(paths)
    client = get_client(url=server.url)
    assistant = await client.assistants.get("assistant")
    assert (await client.assistants.get(assistant["assistant_id"]))["graph_id"] == "assistant"
    drawn = await client.assistants.get_graph("assistant")
    assert {"router", "content_writer", "workspace_tools"} <= {node["id"] for node in drawn["nodes"]}
    schemas = await client.assistants.get_schemas("assistant")
    assert list(schemas["input_schema"]["properties"]) == ["messages"]
