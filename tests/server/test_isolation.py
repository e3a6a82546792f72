"""Thread ids are per owner: another user's id is free to create and unknown to read, with the same answers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import LoomServer
from loom.threads import public_thread_id, thread_key
from server.data.threads import find_thread
from server.db import RunRow, ThreadRow, open_database
from tests.fixtures.servers import serving

pytestmark = pytest.mark.live

KEYS = {"alice": "ka", "bob": "kb"}
APPROVAL = {"assistant_id": "approval", "input": {"request": "alice's refund"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("scope"), LOOM_API_KEYS=json.dumps(KEYS)) as live:
        yield live


@pytest.fixture
async def alice(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEYS["alice"]}, timeout=60) as http:
        yield http


@pytest.fixture
async def bob(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEYS["bob"]}, timeout=60) as http:
        yield http


async def test_another_users_thread_id_creates_a_separate_empty_thread(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    mine = (await alice.post("/threads", json={"thread_id": "proj:1", "metadata": {"who": "alice"}})).json()
    await alice.post("/threads/proj:1/runs/wait", json=APPROVAL)
    created = await bob.post("/threads", json={"thread_id": "proj:1", "metadata": {"who": "bob"}})
    assert created.status_code == 200, created.text
    theirs = created.json()
    assert (theirs["thread_id"], theirs["metadata"], theirs["values"], theirs["status"]) == (
        "proj:1", {"who": "bob"}, {}, "idle"
    )  # fmt: skip
    assert theirs["created_at"] != mine["created_at"]
    assert (await alice.get("/threads/proj:1")).json()["metadata"]["who"] == "alice"
    assert (await alice.get("/threads/proj:1")).json()["status"] == "interrupted"
    again = await bob.post("/threads", json={"thread_id": "proj:1", "if_exists": "do_nothing"})
    assert again.json()["metadata"] == {"who": "bob"}, "the caller's own thread, not alice's"


async def test_reads_and_writes_on_another_users_id_answer_as_an_unknown_id(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    await alice.post("/threads", json={"thread_id": "only-alice"})
    await alice.post("/threads/only-alice/runs/wait", json=APPROVAL)
    [run] = (await alice.get("/threads/only-alice/runs")).json()
    rid = run["run_id"]
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/threads/{t}", None),
        ("PATCH", "/threads/{t}", {"metadata": {"x": 1}}),
        ("GET", "/threads/{t}/state", None),
        ("POST", "/threads/{t}/state", {"values": {"request": "mine now"}}),
        ("POST", "/threads/{t}/history", {}),
        ("GET", "/threads/{t}/history", None),
        ("GET", "/threads/{t}/runs", None),
        ("GET", "/threads/{t}/runs/" + rid, None),
        ("GET", "/threads/{t}/runs/" + rid + "/join", None),
        ("POST", "/threads/{t}/runs/" + rid + "/cancel", None),
        ("POST", "/threads/{t}/runs", {"assistant_id": "approval", "command": {"resume": "yes"}}),
        ("POST", "/threads/{t}/runs/wait", APPROVAL),
        ("POST", "/threads/{t}/runs/stream", APPROVAL),
        ("GET", "/threads/{t}/artifacts/chart.png", None),
        ("POST", "/threads/{t}/runs/crons", {"assistant_id": "approval", "schedule": "0 0 * * *"}),
        ("DELETE", "/threads/{t}", None),
    ]
    for method, path, body in calls:
        taken = await bob.request(method, path.format(t="only-alice"), json=body)
        never = await bob.request(method, path.format(t="never-made"), json=body)
        assert taken.status_code == never.status_code == 404, (method, path, taken.text)
        assert taken.text.replace("only-alice", "?") == never.text.replace("never-made", "?"), (method, path)
    state = (await alice.get("/threads/only-alice/state")).json()
    assert state["values"] == {"request": "alice's refund"}, "nothing bob did touched it"
    assert state["checkpoint"]["thread_id"] == "only-alice", "the API shows the id, never the key"


async def test_runs_of_two_users_on_one_id_do_not_see_each_other(
    server: LoomServer, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    a, b = get_client(url=server.url, api_key=KEYS["alice"]), get_client(url=server.url, api_key=KEYS["bob"])
    for client, request in ((a, "alice's"), (b, "bob's")):
        await client.runs.wait("shared", "approval", input={"request": request}, if_not_exists="create")
    assert (await a.threads.get_state("shared"))["values"] == {"request": "alice's"}
    assert (await b.threads.get_state("shared"))["values"] == {"request": "bob's"}
    [run_a], [run_b] = await a.runs.list("shared"), await b.runs.list("shared")
    assert run_a["run_id"] != run_b["run_id"] and run_a["thread_id"] == run_b["thread_id"] == "shared"
    assert await a.runs.wait("shared", "approval", command={"resume": "yes"}) == {
        "request": "alice's", "decision": "yes"
    }  # fmt: skip
    assert (await b.threads.get("shared"))["status"] == "interrupted", "alice's resume did not reach bob's thread"
    history = await b.threads.get_history("shared")
    assert all("decision" not in h["values"] for h in history)
    assert {h["checkpoint"]["thread_id"] for h in history} == {"shared"}


async def test_streams_name_the_thread_by_its_id(bob: httpx.AsyncClient) -> None:
    body = {**APPROVAL, "if_not_exists": "create", "stream_mode": ["values", "checkpoints", "debug"]}
    async with bob.stream("POST", "/threads/streamed/runs/stream", json=body) as response:
        text = "".join([chunk async for chunk in response.aiter_text()])
    assert response.headers["content-location"].startswith("/threads/streamed/runs/")
    assert thread_key("bob", "streamed") not in text, "the key never reaches the client"
    blocks = [dict(line.split(": ", 1) for line in block.splitlines()) for block in text.split("\r\n\r\n")]
    parsed = {block["event"]: json.loads(block["data"]) for block in blocks if "data" in block}
    assert parsed["checkpoints"]["config"]["configurable"]["thread_id"] == "streamed"
    end = parsed["end"]
    assert (end["status"], end["checkpoint"]["thread_id"]) == ("interrupted", "streamed")
    [run] = (await bob.get("/threads/streamed/runs")).json()
    assert run["thread_id"] == "streamed" and "auth_user" not in run["kwargs"]


async def test_search_and_crons_list_only_the_callers_threads(alice: httpx.AsyncClient, bob: httpx.AsyncClient) -> None:
    for client in (alice, bob):
        await client.post("/threads", json={"thread_id": "listed", "metadata": {"tag": "listed"}})
        cron = {"assistant_id": "approval", "schedule": "0 0 1 1 *", "input": {"request": "x"}}
        assert (await client.post("/threads/listed/runs/crons", json=cron)).status_code == 200
    for client in (alice, bob):
        found = (await client.post("/threads/search", json={"metadata": {"tag": "listed"}})).json()
        assert [t["thread_id"] for t in found] == ["listed"]
        assert len((await client.post("/threads/search", json={"ids": ["listed", "proj:1"]})).json()) <= 2
        crons = (await client.post("/runs/crons/search", json={"thread_id": "listed"})).json()
        assert [c["thread_id"] for c in crons] == ["listed"]
        assert (await client.post("/runs/crons/count", json={"thread_id": "listed"})).json() == 1


async def test_runs_on_a_thread_stored_before_keys_use_its_bare_id(server: LoomServer) -> None:
    """A thread from before per-owner keys is still its owner's: runs on it are admitted, checkpointed under
    its bare id, and an interrupt raised there is answered there (its checkpoint is read under that id)."""

    def stored_before_keys() -> None:
        with sqlite3.connect(server.data_dir / "loom.sqlite") as db:
            db.execute(
                "INSERT INTO loom_threads (thread_id, owner, status, metadata, created_at, updated_at)"
                " VALUES ('before-keys', 'alice', 'idle', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )

    await asyncio.to_thread(stored_before_keys)
    a, b = get_client(url=server.url, api_key=KEYS["alice"]), get_client(url=server.url, api_key=KEYS["bob"])
    waiting = await a.runs.wait("before-keys", "approval", input={"request": "old"})
    assert waiting["request"] == "old" and [i["value"] for i in waiting["__interrupt__"]] == [
        {"question": "approve old?"}
    ]
    with pytest.raises(httpx.HTTPStatusError) as refused:  # the interrupt stands: new input is refused
        await a.runs.wait("before-keys", "approval", input={"request": "again"})
    assert refused.value.response.status_code == 409
    assert await a.runs.wait("before-keys", "approval", command={"resume": "yes"}) == {
        "request": "old", "decision": "yes"
    }  # fmt: skip
    [run, *_] = await a.runs.list("before-keys")
    assert run["thread_id"] == "before-keys" and run["status"] == "success"
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        await b.runs.wait("before-keys", "approval", input={"request": "bob's"})
    assert unknown.value.response.status_code == 404


def test_keys_are_per_owner_and_read_back_as_the_id() -> None:
    assert thread_key("alice", "x") != thread_key("bob", "x")
    assert thread_key("alice", "x") == thread_key("alice", "x")
    assert public_thread_id(thread_key("alice", "proj:1")) == "proj:1"
    assert public_thread_id("made-before-keys") == "made-before-keys"


async def _keys_fit_and_old_threads_stay_their_owners(url: str) -> None:
    """Migration 0005 widens the key columns and leaves old threads under their bare id, with their checkpoints."""
    engine, sessions = await open_database(url)
    longest = thread_key("alice", "x" * 64)
    try:
        async with sessions.begin() as session:
            session.add(ThreadRow(thread_id="old-1", owner="alice", metadata_={}))
            session.add(ThreadRow(thread_id=longest, owner="alice", metadata_={}))
            await session.flush()
            session.add(RunRow(thread_id=longest, owner="alice", assistant_id="a", graph_id="g", kwargs={}))
        async with sessions() as session:
            found = await find_thread(session, "old-1", "alice")
            assert found is not None and found.thread_id == "old-1"
            assert await find_thread(session, "old-1", "bob") is None
            assert (await find_thread(session, "x" * 64, "alice")) is not None
    finally:
        await engine.dispose()


async def test_keys_and_threads_from_before_keys(database_url: str) -> None:
    await _keys_fit_and_old_threads_stay_their_owners(database_url)
