"""A project's own ``langgraph_sdk.Auth`` (``auth.path`` in its langgraph.json) decides who calls and what they see.

The project (``tests/data/projects/guarded``) follows the Agent Server's custom-auth guide: bearer tokens
mapped to users, a global handler that stamps ``owner`` on what is created and filters on it, a delete
handler that needs an ``admin`` permission, an assistants handler, and a store handler that prefixes
namespaces with the user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from loom.processes import LoomServer
from server.auth import matches
from tests.fixtures.servers import serving
from tests.server.live import assert_error

pytestmark = pytest.mark.live
PROJECT = Path(__file__).parents[1] / "data" / "projects" / "guarded"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("guarded"), fixtures=False, project=PROJECT / "langgraph.json") as live:
        yield live


def client(server: LoomServer, token: str | None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60)


@pytest.fixture
async def a(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with client(server, "token-a") as http:
        yield http


@pytest.fixture
async def b(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with client(server, "token-b") as http:
        yield http


async def test_a_caller_the_handler_does_not_know_is_401(server: LoomServer) -> None:
    for token in (None, "token-z"):
        async with client(server, token) as http:
            body = assert_error(await http.post("/threads", json={}), 401, "unauthorized")
            assert body["detail"] == "unknown or missing bearer token"
            assert_error(await http.post("/assistants/search", json={}), 401)
            assert_error(await http.put("/store/items", json={"namespace": ["n"], "key": "k", "value": {}}), 401)
            assert (await http.get("/ok")).status_code == 200


async def test_threads_and_runs_are_the_owners_with_the_metadata_the_handler_stamps(
    a: httpx.AsyncClient, b: httpx.AsyncClient
) -> None:
    thread = (await a.post("/threads", json={"thread_id": "plan", "metadata": {"topic": "q3"}})).json()
    assert thread["metadata"] == {"topic": "q3", "owner": "user-a"}
    reply = await a.post("/threads/plan/runs/wait", json={"assistant_id": "echo", "input": {"messages": []}})
    assert reply.json()["messages"][-1]["content"] == "user-a (Ada) may read,write"
    [run] = (await a.get("/threads/plan/runs")).json()
    assert run["metadata"]["owner"] == "user-a"

    assert [t["thread_id"] for t in (await b.post("/threads/search", json={})).json()] == []
    assert_error(await b.get("/threads/plan"), 404, "thread_not_found")
    assert_error(await b.get("/threads/plan/runs"), 404, "thread_not_found")
    assert_error(await b.get(f"/threads/plan/runs/{run['run_id']}"), 404)
    stateless = await b.post("/runs/wait", json={"assistant_id": "echo", "input": {"messages": []}})
    assert stateless.json()["messages"][-1]["content"] == "user-b (user-b) may read"
    assert [t["thread_id"] for t in (await a.post("/threads/search", json={})).json()] == ["plan"]


async def test_the_handlers_permissions_are_the_runs_grants(a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    """Loom's graphs read grants from ``RunContext``: custom auth's ``permissions``, narrowed by the request only."""
    run = {"assistant_id": "whoami", "input": {}}
    assert (await a.post("/runs/wait", json=run)).json()["permissions"] == ["read", "write"]
    assert (await b.post("/runs/wait", json=run)).json()["permissions"] == ["read"]
    widened = {**run, "context": {"permissions": ["read", "write", "destructive"]}}
    assert (await b.post("/runs/wait", json=widened)).json()["permissions"] == ["read"]


async def test_a_handler_returning_false_is_403(a: httpx.AsyncClient) -> None:
    await a.post("/threads", json={"thread_id": "keep"})
    assert_error(await a.delete("/threads/keep"), 403, "forbidden")
    assert (await a.get("/threads/keep")).status_code == 200


async def test_assistants_follow_the_handlers_filter(a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    found = (await a.post("/assistants/search", json={})).json()
    assert sorted(x["graph_id"] for x in found) == ["echo", "whoami"]
    assistant = found[0]
    assert (await b.post("/assistants/search", json={})).json() == []
    assert_error(await b.get(f"/assistants/{assistant['assistant_id']}"), 404, "assistant_not_found")
    assert (await a.get(f"/assistants/{assistant['assistant_id']}/schemas")).status_code == 200


async def test_store_items_live_in_the_namespace_the_handler_gives_them(
    a: httpx.AsyncClient, b: httpx.AsyncClient
) -> None:
    put = await a.put("/store/items", json={"namespace": ["notes"], "key": "k1", "value": {"text": "a's"}})
    assert put.status_code == 204
    item = (await a.get("/store/items", params={"namespace": "notes", "key": "k1"})).json()
    assert (item["namespace"], item["value"]) == (["user-a", "notes"], {"text": "a's"})
    missing = await b.get("/store/items", params={"namespace": "notes", "key": "k1"})
    assert (missing.status_code, missing.json()) == (200, None)  # b's own namespace has no such item
    assert (await b.post("/store/items/search", json={"namespace_prefix": ["notes"]})).json()["items"] == []
    assert (await b.post("/store/namespaces", json={})).json()["namespaces"] == []
    assert (await a.post("/store/namespaces", json={})).json()["namespaces"] == [["user-a", "notes"]]


async def test_crons_carry_the_owner_and_list_only_for_them(a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    cron = {"assistant_id": "echo", "schedule": "0 0 1 1 *", "input": {"messages": []}}
    created = (await a.post("/runs/crons", json=cron)).json()
    assert created["metadata"] == {"owner": "user-a"}
    assert [c["cron_id"] for c in (await a.post("/runs/crons/search", json={})).json()] == [created["cron_id"]]
    assert (await b.post("/runs/crons/search", json={})).json() == []
    assert (await b.post("/runs/crons/count", json={})).json() == 0


def test_filters_match_metadata_as_langgraph_api_matches_them() -> None:
    metadata = {"owner": "user-a", "tags": ["red", "blue"], "team": "x"}
    assert matches(metadata, {}) and matches(metadata, {"owner": "user-a", "team": {"$eq": "x"}})
    assert matches(metadata, {"tags": {"$contains": "red"}}) and not matches(metadata, {"tags": {"$contains": "green"}})
    assert matches(metadata, {"$or": [{"owner": "user-b"}, {"team": "x"}]})
    assert not matches(metadata, {"$and": [{"owner": "user-a"}, {"team": "y"}]})
    assert not matches(metadata, {"missing": "anything"})
