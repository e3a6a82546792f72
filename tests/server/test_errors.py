"""Bad input and failing graphs: precise 4xx answers with JSON bodies, never a 500, and usable threads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import LoomServer
from tests.server.live import FIXTURE_INPUT, MAX_BODY_BYTES, assert_error, collect

pytestmark = pytest.mark.live


@pytest.fixture
async def http(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


async def new_thread(http: httpx.AsyncClient) -> str:
    response = await http.post("/threads", json={})
    return str(response.json()["thread_id"])


async def test_malformed_json_is_400(http: httpx.AsyncClient) -> None:
    tid = await new_thread(http)
    headers = {"content-type": "application/json"}
    for path in ("/threads", f"/threads/{tid}/runs", f"/threads/{tid}/runs/stream", "/runs/wait"):
        assert_error(
            await http.post(path, content=b'{"assistant_id": "gated", ', headers=headers), 400, "malformed_json"
        )


async def test_unknown_assistant_thread_run_and_checkpoint_are_404(http: httpx.AsyncClient) -> None:
    tid = await new_thread(http)
    missing = "00000000-0000-0000-0000-000000000000"
    run_body = {"assistant_id": "gated", "input": FIXTURE_INPUT}
    cases = [
        ("GET", "/assistants/nope", None, "assistant_not_found"),
        ("GET", "/assistants/nope/graph", None, "assistant_not_found"),
        ("POST", f"/threads/{tid}/runs", {"assistant_id": "nope", "input": {}}, "assistant_not_found"),
        ("POST", "/runs/wait", {"assistant_id": "nope", "input": {}}, "assistant_not_found"),
        ("GET", f"/threads/{missing}", None, "thread_not_found"),
        ("GET", f"/threads/{missing}/state", None, "thread_not_found"),
        ("POST", f"/threads/{missing}/history", {}, "thread_not_found"),
        ("DELETE", f"/threads/{missing}", None, "thread_not_found"),
        ("POST", f"/threads/{missing}/runs", run_body, "thread_not_found"),
        ("GET", f"/threads/{tid}/runs/{missing}", None, "run_not_found"),
        ("GET", f"/threads/{tid}/runs/{missing}/join", None, "run_not_found"),
        ("GET", f"/threads/{tid}/runs/{missing}/stream", None, "run_not_found"),
        ("POST", f"/threads/{tid}/runs/{missing}/cancel", None, "run_not_found"),
        ("GET", "/no/such/route", None, "not_found"),
    ]
    for method, path, body, code in cases:
        assert_error(await http.request(method, path, json=body), 404, code)

    await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "approval", "input": {"request": "x"}})
    assert_error(await http.get(f"/threads/{tid}/state/{missing}"), 404, "checkpoint_not_found")
    fork = {"assistant_id": "approval", "input": None, "checkpoint_id": missing}
    assert_error(await http.post(f"/threads/{tid}/runs", json=fork), 404, "checkpoint_not_found")
    edit = {"values": {"request": "y"}, "checkpoint_id": missing}
    assert_error(await http.post(f"/threads/{tid}/state", json=edit), 404, "checkpoint_not_found")


async def test_invalid_input_and_unknown_fields_are_422_naming_the_field(http: httpx.AsyncClient) -> None:
    tid = await new_thread(http)
    runs = f"/threads/{tid}/runs"
    body = assert_error(await http.post(runs, json={"assistant_id": "approval", "input": {"requets": "typo"}}), 422)
    assert "requets" in body["detail"]
    body = assert_error(await http.post(runs, json={"assistant_id": "gated", "input": {}, "frobnicate": 1}), 422)
    assert "frobnicate" in body["detail"]
    bad_messages = {"assistant_id": "assistant", "input": {"messages": [{"role": "wizard", "content": "hi"}]}}
    assert "messages" in assert_error(await http.post(runs, json=bad_messages), 422)["detail"]
    typo = {"assistant_id": "gated", "stream_mode": ["values", "updatez"]}
    body = assert_error(await http.post(runs, json=typo), 422)
    assert body["detail"].startswith("stream_mode: 'updatez' (item 1) is no stream mode; the modes are values, updates")
    body = assert_error(await http.post("/threads", json={"metadata": {}, "colour": "red"}), 422)
    assert "colour" in body["detail"]
    assert_error(await http.post("/threads/search", json={"limit": 0}), 422)
    assert_error(await http.post(runs, json={"input": {}}), 422)  # no assistant_id
    both = {"assistant_id": "gated", "input": {"log": []}, "command": {"resume": 1}}
    assert "not both" in assert_error(await http.post(runs, json=both), 422)["detail"]
    empty = {"assistant_id": "gated", "input": {}, "command": {"resume": 1}}  # Agent Chat UI's resume: no input
    assert_error(await http.post(runs, json=empty), 409, "nothing_to_resume")
    assert (await http.get(runs)).json() == [], "nothing was accepted"


async def test_oversized_body_is_413(http: httpx.AsyncClient) -> None:
    tid = await new_thread(http)
    big = {"assistant_id": "approval", "input": {"request": "x" * (MAX_BODY_BYTES * 2)}}
    assert_error(await http.post(f"/threads/{tid}/runs", json=big), 413, "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the server must count
        yield b'{"assistant_id": "approval", "input": {"request": "'
        for _ in range(MAX_BODY_BYTES // 512 + 1):
            yield b"x" * 1024
        yield b'"}}'

    sent = await http.post(f"/threads/{tid}/runs", content=chunks(), headers={"content-type": "application/json"})
    assert_error(sent, 413, "body_too_large")
    assert (await http.get(f"/threads/{tid}/runs")).json() == []


async def test_json_sent_as_text_plain_is_accepted(http: httpx.AsyncClient) -> None:
    """LangGraph Studio sends JSON bodies as text/plain."""
    response = await http.post(
        "/threads", content=b'{"metadata": {"from": "studio"}}', headers={"content-type": "text/plain"}
    )
    assert response.status_code == 200 and response.json()["metadata"] == {"from": "studio"}


async def test_conflicts_and_wrong_methods_are_json(http: httpx.AsyncClient) -> None:
    tid = await new_thread(http)
    assert_error(await http.post("/threads", json={"thread_id": tid}), 409, "thread_exists")
    assert_error(await http.put(f"/threads/{tid}"), 405)
    await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "approval", "input": {"request": "x"}})
    other_graph = {"assistant_id": "gated", "input": FIXTURE_INPUT}
    assert_error(await http.post(f"/threads/{tid}/runs", json=other_graph), 409, "graph_mismatch")


async def test_failing_graph_reports_a_structured_error_and_frees_the_thread(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    parts = await collect(client.runs.stream(tid, "failing", input=FIXTURE_INPUT, stream_mode=["updates", "values"]))
    assert [p.event for p in parts][-2:] == ["error", "end"]
    assert parts[-2].data == {"error": "RuntimeError", "message": "this node always fails"}
    assert parts[-1].data["status"] == "error"
    run = await client.runs.get(tid, parts[0].data["run_id"])
    assert run["status"] == "error"
    assert run["error"] == {"error": "RuntimeError", "message": "this node always fails"}
    thread = await client.threads.get(tid)
    assert thread["status"] == "error"

    waited: Any = await client.runs.wait(tid, "failing", input=FIXTURE_INPUT, raise_error=False)
    assert waited["__error__"]["error"] == "RuntimeError"
    assert [r["status"] for r in await client.runs.list(tid)] == ["error", "error"]
    assert (await client.threads.get(tid))["status"] != "busy"
    stateless = await collect(client.runs.stream(None, "failing", input=FIXTURE_INPUT))
    assert [p.event for p in stateless][-2:] == ["error", "end"] and stateless[-1].data["status"] == "error"


async def test_a_blocking_call_on_the_event_loop_fails_the_run(server: LoomServer) -> None:
    """With LOOM_DETECT_BLOCKING (on in tests), a node that blocks the loop errors instead of stalling every run."""
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    waited: Any = await client.runs.wait(tid, "blocking", input=FIXTURE_INPUT, raise_error=False)
    assert waited["__error__"]["error"] == "BlockingError"
    assert "Blocking call to" in waited["__error__"]["message"]
    assert (await client.threads.get(tid))["status"] == "error"
