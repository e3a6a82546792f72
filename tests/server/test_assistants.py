"""Assistants as rows and the rest of the Agent Server shapes, driven with ``langgraph-sdk`` and httpx.

One server with the fixture graphs and two API keys; a second serves the greeter project (its own
context schema) to show an assistant's context reaching the graph under the run's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError

from loom.processes import LoomServer
from tests.fixtures.servers import serving
from tests.server.live import assert_error

pytestmark = pytest.mark.live

KEYS = {"alice": "ka", "bob": "kb"}
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
GREETER = Path(__file__).parents[1] / "data" / "projects" / "greeter" / "langgraph.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("assistants"), LOOM_API_KEYS=json.dumps(KEYS)) as live:
        yield live


def as_user(server: LoomServer, user: str = "alice") -> Any:
    return get_client(url=server.url, api_key=KEYS[user])


def http(server: LoomServer, user: str = "alice") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEYS[user]}, timeout=60)


async def test_default_assistants_have_langgraph_api_ids(server: LoomServer) -> None:
    client = as_user(server)
    defaults = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    by_graph = {a["graph_id"]: a for a in defaults}
    assert by_graph["whoami"]["assistant_id"] == str(uuid.uuid5(NAMESPACE_GRAPH, "whoami"))
    assert by_graph["whoami"]["name"] == "whoami" and by_graph["whoami"]["version"] == 1
    assert (await client.assistants.get("whoami"))["assistant_id"] == by_graph["whoami"]["assistant_id"]
    schemas = await client.assistants.get_schemas("whoami")
    assert {"input_schema", "output_schema", "state_schema", "config_schema", "context_schema"} <= set(schemas)
    assert "permissions" in schemas["context_schema"]["properties"]


async def test_create_patch_versions_latest_and_delete(server: LoomServer) -> None:
    client = as_user(server)
    created = await client.assistants.create("whoami", metadata={"team": "a"}, name="Who v1", context={"k": 1})
    aid = created["assistant_id"]
    assert created["version"] == 1 and created["config"] == {"configurable": {"k": 1}}
    assert (await client.assistants.create("whoami", assistant_id=aid, if_exists="do_nothing"))["name"] == "Who v1"
    with pytest.raises(ConflictError):
        await client.assistants.create("whoami", assistant_id=aid, if_exists="raise")

    patched = await client.assistants.update(aid, name="Who v2", metadata={"stage": "beta"})
    assert patched["version"] == 2 and patched["metadata"] == {"team": "a", "stage": "beta"}
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [2, 1]
    restored = await client.assistants.set_latest(aid, 1)
    assert (restored["version"], restored["name"], restored["metadata"]) == (1, "Who v1", {"team": "a"})

    assert await client.assistants.count(metadata={"team": "a"}) == 1
    found = await client.assistants.search(graph_id="whoami", name="who v", select=["assistant_id", "name"])
    assert found == [{"assistant_id": aid, "name": "Who v1"}]

    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)


async def test_search_sorts_and_pages(server: LoomServer) -> None:
    client = as_user(server)
    tag = {"suite": str(uuid.uuid4())}
    for name in ("b-one", "A-two", "c-three"):
        await client.assistants.create("whoami", name=name, metadata=tag)
    by_name = await client.assistants.search(metadata=tag, sort_by="name", sort_order="asc")
    assert [a["name"] for a in by_name] == ["A-two", "b-one", "c-three"]
    newest = await client.assistants.search(metadata=tag, limit=2, offset=1)
    assert [a["name"] for a in newest] == ["A-two", "b-one"]


async def test_another_users_assistant_does_not_exist_for_them(server: LoomServer) -> None:
    mine = await as_user(server, "alice").assistants.create("whoami", name="private")
    bob = as_user(server, "bob")
    with pytest.raises(NotFoundError):
        await bob.assistants.get(mine["assistant_id"])
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        await bob.runs.wait(None, mine["assistant_id"], input={"request": "x"})
    assert mine["assistant_id"] not in {a["assistant_id"] for a in await bob.assistants.search(limit=1000)}
    async with http(server, "bob") as bob_http:
        answer = await bob_http.post("/assistants", json={"graph_id": "whoami", "assistant_id": mine["assistant_id"]})
    assert_error(answer, 409, "assistant_exists")


async def test_runs_name_an_assistant_by_uuid(server: LoomServer) -> None:
    client = as_user(server)
    created = await client.assistants.create("whoami", context={"permissions": []})
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], created["assistant_id"], input={"request": "x"})
    assert result["permissions"] == []  # the assistant's context narrowed the grants
    runs = await client.runs.list(thread["thread_id"])
    assert runs[0]["assistant_id"] == created["assistant_id"]
    assert (await client.threads.get(thread["thread_id"]))["metadata"]["assistant_id"] == created["assistant_id"]


async def test_bad_assistant_input_is_a_4xx_naming_the_field(server: LoomServer) -> None:
    async with http(server) as client:
        assert "assistant_id" in assert_error(await client.post("/assistants", json={"graph_id": "whoami",
                                               "assistant_id": "nope"}), 422)["detail"]  # fmt: skip
        assert_error(await client.post("/assistants", json={"graph_id": "missing"}), 404, "graph_not_found")
        both = {"graph_id": "whoami", "config": {"configurable": {"a": 1}}, "context": {"a": 1}}
        assert "context" in assert_error(await client.post("/assistants", json=both), 422)["detail"]
        assert "select" in assert_error(await client.post("/assistants/search", json={"select": ["x"]}), 422)["detail"]
        sort = await client.post("/assistants/search", json={"sort_by": "secret"})
        assert "sort_by" in assert_error(sort, 422)["detail"]
        assert_error(await client.post("/assistants/whoami/latest", json={"version": 1}), 409, "assistant_is_default")
        assert_error(await client.delete("/assistants/whoami"), 409, "assistant_is_default")
        mine = (await client.post("/assistants", json={"graph_id": "whoami"})).json()["assistant_id"]
        assert_error(await client.post(f"/assistants/{mine}/latest", json={"version": 99}), 404)
        assert_error(await client.patch(f"/assistants/{uuid.uuid4()}", json={}), 404, "assistant_not_found")
        for extract in ({"a": "owner"}, {"1a": "values"}):
            bad = await client.post("/threads/search", json={"extract": extract})
            assert "extract" in assert_error(bad, 422)["detail"]


async def test_thread_shapes_count_sorting_and_state_at_a_checkpoint(server: LoomServer) -> None:
    client = as_user(server)
    tag = {"suite": str(uuid.uuid4())}
    first = await client.threads.create(metadata=tag)
    second = await client.threads.create(metadata=tag)
    tid = first["thread_id"]
    assert {"config", "state_updated_at", "error"} <= set(first)
    for request in ("one", "two"):
        await client.runs.wait(tid, "whoami", input={"request": request})
    assert await client.threads.count(metadata=tag) == 2
    ascending = await client.threads.search(metadata=tag, sort_by="created_at", sort_order="asc")
    assert [t["thread_id"] for t in ascending] == [tid, second["thread_id"]]
    selected = await client.threads.search(metadata=tag, select=["thread_id", "status"], sort_by="state_updated_at")
    assert selected[0] == {"thread_id": tid, "status": "idle"}  # its runs changed its state last
    assert [t["thread_id"] for t in await client.threads.search(metadata=tag, values={"request": "two"})] == [tid]
    extracted = await client.threads.search(
        metadata=tag, ids=[tid], select=["thread_id"], extract={"asked": "values.request", "gone": "values.x[3]"}
    )
    assert extracted == [{"thread_id": tid, "extracted": {"asked": "two", "gone": None}}]

    history = await client.threads.get_history(tid)
    assert all(h["checkpoint_id"] == h["checkpoint"]["checkpoint_id"] for h in history)
    assert history[0]["parent_checkpoint_id"] == history[1]["checkpoint_id"]
    earlier = next(h for h in history if h["values"].get("request") == "one" and not h["next"])
    state = await client.threads.get_state(tid, checkpoint=earlier["checkpoint"])
    assert state["values"]["request"] == "one" and state["checkpoint_id"] == earlier["checkpoint_id"]


async def test_a_copied_thread_has_the_same_state_and_history_and_goes_its_own_way(server: LoomServer) -> None:
    client = as_user(server)
    tid = (await client.threads.create(metadata={"kind": "original"}))["thread_id"]
    await client.runs.wait(tid, "approval", input={"request": "refund"})
    copied = await client.threads.copy(tid)
    assert copied["thread_id"] != tid and copied["metadata"]["kind"] == "original"
    assert copied["status"] == "interrupted" and copied["values"] == (await client.threads.get(tid))["values"]
    history = [[h["checkpoint_id"], h["next"]] for h in await client.threads.get_history(tid)]
    assert [[h["checkpoint_id"], h["next"]] for h in await client.threads.get_history(copied["thread_id"])] == history
    await client.runs.wait(copied["thread_id"], "approval", command={"resume": "yes"})
    assert (await client.threads.get_state(copied["thread_id"]))["values"]["decision"] == "yes"
    assert (await client.threads.get_state(tid))["next"] == ["ask_approval"]  # the original still waits
    with pytest.raises(NotFoundError):
        await as_user(server, "bob").threads.copy(tid)


async def test_batch_runs_and_wait_location(server: LoomServer) -> None:
    async with http(server) as client:
        bodies = [{"assistant_id": "whoami", "input": {"request": r}} for r in "ab"]
        batch = await client.post("/runs/batch", json=bodies)
        assert batch.status_code == 200, batch.text
        assert [run["assistant_id"] for run in batch.json()] == [str(uuid.uuid5(NAMESPACE_GRAPH, "whoami"))] * 2
        waited = await client.post("/runs/wait", json={"assistant_id": "whoami", "input": {"request": "c"}})
        assert waited.headers["location"].endswith("/join") and waited.json()["user_id"] == "alice"
        assert "0" in assert_error(await client.post("/runs/batch", json=[{"input": {}}]), 422)["detail"]
        before = (await client.post("/threads/count", json={"metadata": {"ephemeral": True}})).json()
        bad_second = [bodies[0], {"assistant_id": "whoami", "input": {"nope": 1}}]
        assert assert_error(await client.post("/runs/batch", json=bad_second), 422)["detail"].startswith("1.input.nope")
        assert (await client.post("/threads/count", json={"metadata": {"ephemeral": True}})).json() == before


@pytest.fixture
def greeter(tmp_path: Path) -> Iterator[LoomServer]:
    with serving(tmp_path / "greeter", fixtures=False, project=GREETER) as server:
        yield server


async def test_an_assistants_context_reaches_the_graph_under_the_runs(greeter: LoomServer) -> None:
    client = get_client(url=greeter.url)
    default = await client.assistants.get("greeter")
    assert default["name"] == "Greeter"  # the compiled graph's name, as langgraph-api names it
    schemas = await client.assistants.get_schemas("greeter")
    assert "greeting" in schemas["context_schema"]["properties"]
    assert "greeting" in schemas["config_schema"]["properties"]
    spanish = await client.assistants.create("greeter", context={"greeting": "Hola"}, name="Spanish")
    hello = {"messages": [{"role": "user", "content": "x"}]}
    said = await client.runs.wait(None, spanish["assistant_id"], input=hello)
    assert said["messages"][-1]["content"].startswith("Hola, demo")
    overridden = await client.runs.wait(None, spanish["assistant_id"], input=hello, context={"greeting": "Hey"})
    assert overridden["messages"][-1]["content"].startswith("Hey, demo")


async def test_a_state_schema_leaves_out_managed_values(greeter: LoomServer) -> None:
    """As langgraph-api: ``is_last_step`` (a managed value) is never in a thread's values nor written by an update."""
    state_schema = (await get_client(url=greeter.url).assistants.get_schemas("echo"))["state_schema"]
    assert sorted(state_schema["properties"]) == ["heard", "said"]
    assert "is_last_step" not in state_schema.get("required", [])
