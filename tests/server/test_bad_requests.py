"""Requests a probe found to end in a 500 (issue 13): each is now a 4xx whose error names what is wrong."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.live import assert_error, thread_with_run

pytestmark = pytest.mark.live


BAD_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    ("POST", "history", {"before": {"checkpoint_id": {"a": 1}}}, 422, "invalid_request"),
    ("GET", "history?limit=-3", None, 422, "invalid_request"),
    ("GET", "history?limit=99999999999999999999", None, 422, "invalid_request"),
    ("POST", "state", {"values": {}, "as_node": "not_a_node"}, 422, "invalid_state_update"),
    ("POST", "state", {"values": [1, 2]}, 422, "invalid_state_update"),
    ("POST", "runs/wait", {"assistant_id": "assistant", "input": {"messages": [{"type": "ai", "tool_calls": "x"}]}},
     422, "invalid_input"),
    ("POST", "runs/wait", {"assistant_id": "assistant",
                           "input": {"messages": [{"type": "ai", "content": "", "tool_calls": "x"}]}},
     422, "invalid_input"),
    ("GET", "artifacts/%00", None, 404, "artifact_not_found"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_REQUESTS)
async def test_bad_input_found_by_the_probe_is_a_4xx(
    alice_http: httpx.AsyncClient, method: str, path: str, body: Any, status: int, code: str
) -> None:
    tid = await thread_with_run(alice_http)
    answer = await alice_http.request(method, f"/threads/{tid}/{path}", json=body)
    assert_error(answer, status, code)


@pytest.mark.parametrize("route", ["runs", "runs/wait", "runs/stream"])
async def test_input_the_graph_refuses_on_an_unknown_thread_is_404_about_the_thread(
    alice_http: httpx.AsyncClient, route: str
) -> None:
    body = {"assistant_id": "assistant", "input": {"no_such_field": 1}}
    assert_error(await alice_http.post(f"/threads/never-made/{route}", json=body), 404, "thread_not_found")
    made = await alice_http.post("/threads/never-made/runs/wait", json={**body, "if_not_exists": "create"})
    assert_error(made, 422, "invalid_input")  # a thread to be made: the input is what is wrong


async def test_an_unknown_store_filter_operator_is_422_naming_it(alice_http: httpx.AsyncClient) -> None:
    answer = await alice_http.post("/store/items/search", json={"filter": {"a": {"$bogus": 1}}})
    assert "$bogus" in assert_error(answer, 422, "invalid_request")["detail"]
    answer = await alice_http.post("/store/items/search", json={"filter": {"a'; drop": 1}})
    assert "filter key" in assert_error(answer, 422, "invalid_request")["detail"]
    for path in (".", "a.", ".a", "a..b", ""):  # found by the fuzzer: an empty path segment was a SQL error
        answer = await alice_http.post("/store/items/search", json={"filter": {path: 1}})
        assert "filter key" in assert_error(answer, 422, "invalid_request")["detail"]
    fine = await alice_http.post("/store/items/search", json={"filter": {"a": {"$gte": 1}}})
    assert fine.status_code == 200 and fine.json() == {"items": []}


async def test_history_before_a_checkpoint_still_works(alice_http: httpx.AsyncClient) -> None:
    tid = await thread_with_run(alice_http)
    newest = (await alice_http.post(f"/threads/{tid}/history", json={"limit": 2})).json()
    before = newest[0]["checkpoint"]
    for given in (before, before["checkpoint_id"]):
        older = (await alice_http.post(f"/threads/{tid}/history", json={"limit": 1, "before": given})).json()
        assert [s["checkpoint"]["checkpoint_id"] for s in older] == [newest[1]["checkpoint"]["checkpoint_id"]]


@pytest.mark.parametrize(
    "payload",
    [{}, {"messages": []}, {"messages": [{"role": "assistant", "content": "hi"}]}],
    ids=["no messages", "empty list", "assistant last"],
)
async def test_a_chat_graph_without_a_user_message_is_422(
    alice_http: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    """Loom's chat graphs answer the user's last message; without one they used to fail inside a node."""
    thread_id = (await alice_http.post("/threads", json={})).json()["thread_id"]
    answer = await alice_http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "assistant", "input": payload})
    assert_error(answer, 422, "invalid_input")
    assert answer.json()["detail"].startswith("input.messages: this graph answers a user's message")
    assert (await alice_http.get(f"/threads/{thread_id}/runs")).json() == []
    schemas = (await alice_http.get("/assistants/assistant/schemas")).json()
    assert schemas["input_schema"]["x-loom-user-turn"] is True
