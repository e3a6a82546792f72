"""Issue 13, server half: every case a probe found returns a 4xx (never a 500), limits hold at the edge,
permissions come from the server, and artifacts cannot be reached across users or by path tricks."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loom.processes import LoomServer
from tests.server.live import assert_error, serving

pytestmark = pytest.mark.live

KEYS = {"alice": "ka", "bob": "kb"}
ALICE, BOB = {"x-api-key": "ka"}, {"x-api-key": "kb"}
CHART = {"messages": [{"role": "user", "content": "Create a chart from this data: Q1 120, Q2 150, Q3 90"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    env = {
        "LOOM_API_KEYS": json.dumps(KEYS),
        "LOOM_USER_PERMISSIONS": json.dumps({"alice": ["read", "write"]}),
        "LOOM_BODY_READ_TIMEOUT_S": "1",
        "LOOM_HEADER_READ_TIMEOUT_S": "1",
    }
    with serving(tmp_path_factory.mktemp("hardening"), **env) as live:
        yield live


@pytest.fixture
async def http(server: LoomServer) -> Any:
    async with httpx.AsyncClient(base_url=server.url, headers=ALICE, timeout=60) as client:
        yield client
        assert (await client.get("/ok")).status_code == 200, "the server still answers"


async def thread_with_run(http: httpx.AsyncClient, thread_id: str | None = None) -> str:
    body = {"thread_id": thread_id} if thread_id else {}
    tid: str = (await http.post("/threads", json=body)).json()["thread_id"]
    done = await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "assistant", "input": CHART})
    assert done.status_code == 200 and "__error__" not in done.json(), done.text
    return tid


# the seven 500s --------------------------------------------------------------------------------------
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
    http: httpx.AsyncClient, method: str, path: str, body: Any, status: int, code: str
) -> None:
    tid = await thread_with_run(http)
    answer = await http.request(method, f"/threads/{tid}/{path}", json=body)
    assert_error(answer, status, code)


async def test_an_unknown_store_filter_operator_is_422_naming_it(http: httpx.AsyncClient) -> None:
    answer = await http.post("/store/items/search", json={"filter": {"a": {"$bogus": 1}}})
    assert "$bogus" in assert_error(answer, 422, "invalid_request")["detail"]
    answer = await http.post("/store/items/search", json={"filter": {"a'; drop": 1}})
    assert "filter key" in assert_error(answer, 422, "invalid_request")["detail"]
    for path in (".", "a.", ".a", "a..b", ""):  # found by the fuzzer: an empty path segment was a SQL error
        answer = await http.post("/store/items/search", json={"filter": {path: 1}})
        assert "filter key" in assert_error(answer, 422, "invalid_request")["detail"]
    fine = await http.post("/store/items/search", json={"filter": {"a": {"$gte": 1}}})
    assert fine.status_code == 200 and fine.json() == {"items": []}


async def test_history_before_a_checkpoint_still_works(http: httpx.AsyncClient) -> None:
    tid = await thread_with_run(http)
    newest = (await http.post(f"/threads/{tid}/history", json={"limit": 2})).json()
    before = newest[0]["checkpoint"]
    for given in (before, before["checkpoint_id"]):
        older = (await http.post(f"/threads/{tid}/history", json={"limit": 1, "before": given})).json()
        assert [s["checkpoint"]["checkpoint_id"] for s in older] == [newest[1]["checkpoint"]["checkpoint_id"]]


# limits at the edge ----------------------------------------------------------------------------------
async def test_a_surrogate_pair_is_a_character(http: httpx.AsyncClient) -> None:
    body = '{"metadata": {"emoji": "\\ud83e\\uddf5"}}'
    answer = await http.post("/threads", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"]["emoji"] == "\N{SPOOL OF THREAD}"


async def test_nesting_up_to_the_limit_is_kept_whole(http: httpx.AsyncClient) -> None:
    deepest = '{"metadata": {"a": %s}}' % ("[" * 98 + "]" * 98)  # 100 levels with the two objects around it
    answer = await http.post("/threads", content=deepest, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"]["a"] == json.loads(deepest)["metadata"]["a"]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ('{"metadata": {"a": NaN}}', 400, "malformed_json"),
        ('{"metadata": {"a": Infinity}}', 400, "malformed_json"),
        ('{"metadata": {"a": [-Infinity]}}', 400, "malformed_json"),
        ('{"metadata": {"a": 1e999}}', 422, "invalid_number"),
        ('{"metadata": {"a": -1e400}}', 422, "invalid_number"),
        ('{"metadata": {"a": 99999999999999999999}}', 422, "invalid_number"),
        ('{"metadata": {"a": "\\udbeb"}}', 400, "malformed_json"),  # unpaired surrogate (found by the fuzzer)
        ('{"metadata": {"a": "\\udd45\\udbeb"}}', 400, "malformed_json"),  # both halves, wrong order
        ('{"metadata": {"a": %s}}' % ("[" * 99 + "]" * 99), 400, "malformed_json"),  # 101 levels, over the limit
        ('{"metadata": {"a": %s}}' % ("[" * 300 + "]" * 300), 400, "malformed_json"),  # pydantic failed: a 500
        ('{"metadata": {"a": %s}}' % ("[" * 100_000 + "]" * 100_000), 400, "malformed_json"),  # json's own limit
    ],
)
async def test_json_is_strict(http: httpx.AsyncClient, raw: str, status: int, code: str) -> None:
    marker = f"strict-{status}-{code}-{len(raw)}"
    body = raw.replace('{"a"', f'{{"marker": "{marker}", "a"')
    answer = await http.post("/threads", content=body, headers={"content-type": "application/json"})
    assert_error(answer, status, code)
    assert (await http.post("/threads/search", json={"metadata": {"marker": marker}})).json() == []


@pytest.mark.parametrize("limit", ["x", 0, -1, 10**6, 2.5, True])
async def test_a_bad_recursion_limit_is_422_before_any_run(http: httpx.AsyncClient, limit: Any) -> None:
    tid = (await http.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "assistant", "input": CHART, "config": {"recursion_limit": limit}}
    answer = await http.post(f"/threads/{tid}/runs", json=body)
    assert "recursion_limit" in assert_error(answer, 422, "invalid_request")["detail"]
    assert (await http.get(f"/threads/{tid}/runs")).json() == []


def test_half_sent_bodies_are_answered_408_and_dropped(server: LoomServer) -> None:
    head = (
        b"POST /threads HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ka\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(20)]
    try:
        for sock in sockets:
            sock.sendall(head + b'{"metadata": {"hal')
        for sock in sockets:
            answer = b""
            while chunk := sock.recv(4096):  # returns b"" once the server closes the connection
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b'"code": "body_timeout"' in answer
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(f"{server.url}/ok").status_code == 200


def test_connections_that_never_finish_a_request_head_are_closed(server: LoomServer) -> None:
    """Silent connections, and half-sent heads before or after a response, would each hold a descriptor for ever."""
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(10)]
    half_sent = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(10)]
    answered = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        for sock in half_sent:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-")
        answered.sendall(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /ok HTTP/1.1\r\nHost: 12")
        for sock in (*silent, *half_sent, answered):
            answer = b""
            while chunk := sock.recv(4096):  # returns b"" once the server closes the connection
                answer += chunk
            if sock in silent:
                assert answer == b""
            elif sock in half_sent:
                assert answer.startswith(b"HTTP/1.1 408") and b'"code": "header_timeout"' in answer, answer
            else:  # the first request answered, the second's head never finished
                assert answer.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in answer, answer
    finally:
        for sock in (*silent, *half_sent, answered):
            sock.close()
    assert httpx.get(f"{server.url}/ok").status_code == 200


# permissions -----------------------------------------------------------------------------------------
async def granted(server: LoomServer, headers: dict[str, str], context: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {"assistant_id": "whoami", "input": {"request": "who"}}
    if context is not None:
        body["context"] = context
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        answer = await http.post("/runs/wait", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_permissions_come_from_the_server_and_the_request_only_narrows_them(server: LoomServer) -> None:
    assert (await granted(server, ALICE, None))["permissions"] == ["read", "write"]
    assert (await granted(server, ALICE, {"permissions": ["read"]}))["permissions"] == ["read"]
    assert (await granted(server, BOB, None))["permissions"] == ["read"]
    widened = await granted(server, BOB, {"permissions": ["read", "write", "destructive"], "user_id": "alice"})
    assert widened == {"request": "who", "user_id": "bob", "permissions": ["read"]}


async def test_a_graph_finds_the_run_s_ids_where_langgraph_api_puts_them(server: LoomServer) -> None:
    """Graphs written for langgraph-api read ``configurable.run_id`` and friends; ``user_id`` is the server's."""
    spoofed = {"configurable": {"user_id": "alice", "run_id": "mine"}, "metadata": {"graph_id": "other"}}
    body = {"assistant_id": "config_probe", "input": {}, "config": spoofed}
    async with httpx.AsyncClient(base_url=server.url, headers=BOB, timeout=60) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        answer = await http.post(f"/threads/{thread_id}/runs/wait", json=body)
        [run] = (await http.get(f"/threads/{thread_id}/runs")).json()
    assert answer.status_code == 200, answer.text
    ids = {"run_id": run["run_id"], "graph_id": "config_probe", "assistant_id": run["assistant_id"], "user_id": "bob"}
    seen = answer.json()["seen"]
    assert (seen["configurable"], seen["metadata"]) == (ids, {**ids, "run_attempt": 1})


async def test_a_run_carries_its_thread_s_metadata_as_langgraph_api_merges_it(server: LoomServer) -> None:
    """A tag the client put on the thread reaches every run's ``config["metadata"]`` and the run's own metadata;
    the run's metadata wins a clash, and the assistant id cannot be overridden."""
    thread_tags = {"tenant": "acme", "channel": "email"}
    run_tags = {"channel": "web", "assistant_id": "spoofed"}
    async with httpx.AsyncClient(base_url=server.url, headers=BOB, timeout=60) as http:
        thread_id = (await http.post("/threads", json={"metadata": thread_tags})).json()["thread_id"]
        body = {"assistant_id": "config_probe", "input": {}, "metadata": run_tags}
        answer = await http.post(f"/threads/{thread_id}/runs/wait", json=body)
        [run] = (await http.get(f"/threads/{thread_id}/runs")).json()
    assert answer.status_code == 200, answer.text
    assert answer.json()["seen"]["labels"] == {"tenant": "acme", "channel": "web"}
    assert {key: run["metadata"].get(key) for key in ("tenant", "channel")} == {"tenant": "acme", "channel": "web"}
    assert run["metadata"]["assistant_id"] == run["assistant_id"] != "spoofed"
    assert answer.json()["seen"]["metadata"]["assistant_id"] == run["assistant_id"]


async def test_langgraph_s_internal_config_keys_are_422(http: httpx.AsyncClient) -> None:
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    for key in ("__pregel_checkpointer", "__pregel_durability"):
        body = {"assistant_id": "whoami", "input": {"request": "x"}, "config": {"configurable": {key: "x"}}}
        answer = await http.post(f"/threads/{thread_id}/runs", json=body)
        assert_error(answer, 422, "invalid_request")
        assert key in answer.json()["detail"] and "config.configurable" in answer.json()["detail"]
    assert (await http.get(f"/threads/{thread_id}/runs")).json() == []


@pytest.mark.parametrize(
    "payload",
    [{}, {"messages": []}, {"messages": [{"role": "assistant", "content": "hi"}]}],
    ids=["no messages", "empty list", "assistant last"],
)
async def test_a_chat_graph_without_a_user_message_is_422(http: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    """Loom's chat graphs answer the user's last message; without one they used to fail inside a node."""
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    answer = await http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "assistant", "input": payload})
    assert_error(answer, 422, "invalid_input")
    assert answer.json()["detail"].startswith("input.messages: this graph answers a user's message")
    assert (await http.get(f"/threads/{thread_id}/runs")).json() == []
    schemas = (await http.get("/assistants/assistant/schemas")).json()
    assert schemas["input_schema"]["x-loom-user-turn"] is True


async def test_malformed_permissions_in_the_context_are_422(http: httpx.AsyncClient) -> None:
    for permissions in ("write", ["admin"], [1]):
        body = {"assistant_id": "whoami", "input": {"request": "x"}, "context": {"permissions": permissions}}
        answer = await http.post("/runs/wait", json=body)
        assert "context.permissions" in assert_error(answer, 422, "invalid_context")["detail"]


# artifacts across users and paths --------------------------------------------------------------------
async def test_colliding_thread_ids_do_not_share_artifacts(server: LoomServer, http: httpx.AsyncClient) -> None:
    tid = await thread_with_run(http, "proj:1")
    state = (await http.get(f"/threads/{tid}/state")).json()
    name = state["values"]["artifacts"][0]["url"].rsplit("/", 1)[1]
    assert (await http.get(f"/threads/proj:1/artifacts/{name}")).status_code == 200
    async with httpx.AsyncClient(base_url=server.url, headers=BOB, timeout=60) as bob:
        assert (await bob.post("/threads", json={"thread_id": "proj_1"})).status_code == 200
        assert_error(await bob.get(f"/threads/proj_1/artifacts/{name}"), 404, "artifact_not_found")
        assert_error(await bob.get(f"/threads/proj:1/artifacts/{name}"), 404, "thread_not_found")
        # alice deletes her thread; bob takes the id: her files went with it and were never his
        assert (await http.delete("/threads/proj:1")).status_code == 204
        assert (await bob.post("/threads", json={"thread_id": "proj:1"})).status_code == 200
        assert_error(await bob.get(f"/threads/proj:1/artifacts/{name}"), 404, "artifact_not_found")


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "%2e%2e",
        "..%2F..%2Floom.sqlite",
        "%2e%2e%2f%2e%2e%2floom.sqlite",
        "%2e%2e%5c%2e%2e%5cloom.sqlite",
        "%00",
        "chart.png%00.png",
        "%2Fetc%2Fpasswd",
        ".",
        "../../loom.sqlite",
        "/etc/passwd",
    ],
)
async def test_artifact_names_that_are_not_bare_file_names_are_404(
    server: LoomServer, http: httpx.AsyncClient, name: str
) -> None:
    tid = await thread_with_run(http)
    status, body = raw_get(server, f"/threads/{tid}/artifacts/{name}")
    assert status == 404, (name, status, body[:200])
    assert json.loads(body)["code"] in ("artifact_not_found", "not_found")


def raw_get(server: LoomServer, target: str) -> tuple[int, bytes]:
    """The request line exactly as given: HTTP clients remove ``..`` segments before sending, attackers do not."""
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ka\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
