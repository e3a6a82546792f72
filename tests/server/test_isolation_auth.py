"""API keys map to users; another user's threads and runs do not exist for them; graphs see the real user."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from loom.processes import LoomServer
from tests.fixtures.servers import serving
from tests.server.live import assert_error, collect

pytestmark = pytest.mark.live

KEYS = {"alice": "ka", "bob": "kb"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    data_dir = tmp_path_factory.mktemp("isolation")
    for user in KEYS:  # the same word in both users' files: only the caller's may be found
        folder = data_dir / "workspaces" / user
        folder.mkdir(parents=True)
        (folder / f"kumquat-{user}.md").write_text(f"kumquat ledger kept by {user}")
    with serving(data_dir, LOOM_API_KEYS=json.dumps(KEYS)) as live:
        yield live


def as_user(server: LoomServer, user: str) -> Any:
    return get_client(url=server.url, api_key=KEYS[user])


async def test_requests_without_a_valid_key_are_401(server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert_error(await http.post("/threads", json={}), 401, "unauthorized")
        assert_error(await http.post("/assistants/search", json={}), 401, "unauthorized")
        assert_error(await http.get("/threads/x", headers={"x-api-key": "wrong"}), 401, "unauthorized")
        assert_error(await http.post("/threads", json={}, headers={"Authorization": "Bearer wrong"}), 401)
        assert (await http.post("/threads", json={}, headers={"Authorization": "Bearer ka"})).status_code == 200
        assert (await http.post("/threads", json={}, headers={"x-api-key": "kb"})).status_code == 200
        assert (await http.get("/ok")).status_code == 200, "health needs no key"


async def test_two_different_keys_in_one_request_are_a_400_naming_both_headers(server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        both = {"Authorization": "Bearer ka", "x-api-key": "kb"}
        before = [await as_user(server, user).threads.count() for user in KEYS]
        answer = await http.post("/threads", json={}, headers=both)
        assert_error(answer, 400, "ambiguous_credentials")
        assert "authorization" in answer.json()["detail"] and "x-api-key" in answer.json()["detail"]
        assert [await as_user(server, user).threads.count() for user in KEYS] == before, "nothing was created"
        same = {"Authorization": "Bearer ka", "x-api-key": "ka"}
        assert (await http.post("/threads", json={}, headers=same)).status_code == 200


async def test_another_users_thread_and_runs_are_404(server: LoomServer) -> None:
    alice, bob = as_user(server, "alice"), as_user(server, "bob")
    thread = await alice.threads.create(metadata={"owner_check": True})
    tid = thread["thread_id"]
    await alice.runs.wait(tid, "approval", input={"request": "refund"})
    [run] = await alice.runs.list(tid)
    rid = run["run_id"]

    refused: list[Callable[[], Awaitable[Any]]] = [
        lambda: bob.threads.get(tid),
        lambda: bob.threads.get_state(tid),
        lambda: bob.threads.get_history(tid),
        lambda: bob.threads.update_state(tid, {"request": "mine now"}),
        lambda: bob.threads.update(tid, metadata={"x": 1}),
        lambda: bob.threads.delete(tid),
        lambda: bob.runs.list(tid),
        lambda: bob.runs.get(tid, rid),
        lambda: bob.runs.join(tid, rid),
        lambda: bob.runs.cancel(tid, rid),
        lambda: bob.runs.create(tid, "approval", command={"resume": "yes"}),
        lambda: bob.runs.wait(tid, "approval", input={"request": "other"}),
        lambda: collect(bob.runs.join_stream(tid, rid)),
    ]
    for call in refused:
        with pytest.raises(httpx.HTTPStatusError) as answer:  # some SDK calls raise the plain httpx error
            await call()
        assert answer.value.response.status_code == 404, answer.value.response.text
    assert tid not in [t["thread_id"] for t in await bob.threads.search(metadata={"owner_check": True})]
    # the id is free for bob: his run creates his own thread under it (tests/server/test_isolation.py)
    await bob.runs.wait(tid, "approval", input={"request": "x"}, if_not_exists="create")

    assert (await alice.threads.get(tid))["status"] == "interrupted", "nothing bob did touched it"
    assert (await alice.threads.get_state(tid))["values"] == {"request": "refund"}
    result = await alice.runs.wait(tid, "approval", command={"resume": "yes"})
    assert result == {"request": "refund", "decision": "yes"}


async def test_workspace_search_uses_the_authenticated_user(server: LoomServer) -> None:
    alice = as_user(server, "alice")
    tid = (await alice.threads.create())["thread_id"]
    request = {"messages": [{"role": "user", "content": "search my files for kumquat"}]}
    impersonation = {"user_id": "bob", "user_name": "Alice"}
    parts = await collect(
        alice.runs.stream(tid, "assistant", input=request, context=impersonation, stream_mode=["updates", "values"])
    )
    assert parts[-1].data["status"] == "success"
    messages = [p.data for p in parts if p.event == "values"][-1]["messages"]
    results = [json.loads(m["content"]) for m in messages if m["type"] == "tool" and m["name"] == "search_files"]
    assert [[hit["name"] for hit in r["results"]] for r in results] == [["kumquat-alice.md"]]
    assert "bob" not in json.dumps(results)


async def test_graph_and_assistant_reads_need_a_key_but_no_ownership(server: LoomServer) -> None:
    alice, bob = as_user(server, "alice"), as_user(server, "bob")
    assert [a["graph_id"] for a in await alice.assistants.search()] == [
        a["graph_id"] for a in await bob.assistants.search()
    ]
    tid = (await bob.threads.create())["thread_id"]
    run = await bob.runs.create(tid, "approval", input={"request": "bob's"})
    with pytest.raises(NotFoundError):
        await alice.runs.get(tid, run["run_id"])
    await bob.runs.join(tid, run["run_id"])
    assert (await bob.runs.get(tid, run["run_id"]))["status"] == "interrupted"
