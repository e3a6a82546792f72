"""``/store`` through ``langgraph_sdk``'s ``client.store``: long-term memory, kept per user."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import PROJECT_ROOT, LoomServer
from tests.fixtures.servers import serving
from tests.server.live import assert_error

pytestmark = pytest.mark.live

PROJECTS = PROJECT_ROOT / "tests" / "data" / "projects"
KEYS = {"alice": "ka", "bob": "kb", "john.smith@example.com": "kj", "john%2Esmith@example%2Ecom": "kk"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("store"), LOOM_API_KEYS=json.dumps(KEYS)) as live:
        yield live


def as_user(server: LoomServer, user: str) -> Any:
    return get_client(url=server.url, api_key=KEYS[user])


async def test_items_are_put_read_searched_listed_and_deleted(server: LoomServer) -> None:
    alice = as_user(server, "alice")
    await alice.store.put_item(["memories", "profile"], key="tone", value={"likes": "short answers"})
    await alice.store.put_item(["memories", "projects"], key="ai", value={"name": "AI Strategy", "status": "draft"})
    item = await alice.store.get_item(["memories", "profile"], key="tone")
    assert item["namespace"] == ["memories", "profile"] and item["value"] == {"likes": "short answers"}
    assert datetime.fromisoformat(item["created_at"]).utcoffset() is not None  # UTC, said so on every engine
    found = await alice.store.search_items(["memories"], filter={"status": "draft"})
    assert [(i["namespace"], i["key"]) for i in found["items"]] == [(["memories", "projects"], "ai")]
    listed = await alice.store.list_namespaces(prefix=["memories"])
    assert sorted(listed["namespaces"]) == [["memories", "profile"], ["memories", "projects"]]
    assert (await alice.store.list_namespaces(max_depth=1))["namespaces"] == [["memories"]]
    await alice.store.delete_item(["memories", "profile"], key="tone")
    assert await alice.store.get_item(["memories", "profile"], key="tone") is None  # as langgraph-api: null, 200


async def test_one_user_never_sees_another_users_items(server: LoomServer) -> None:
    alice, bob = as_user(server, "alice"), as_user(server, "bob")
    await alice.store.put_item(["notes"], key="secret", value={"text": "alice only"})
    assert await bob.store.get_item(["notes"], key="secret") is None
    assert (await bob.store.search_items(["notes"]))["items"] == []
    assert ["notes"] not in (await bob.store.list_namespaces())["namespaces"]
    await bob.store.delete_item(["notes"], key="secret")  # deletes bob's (absent) item, not alice's
    assert (await alice.store.get_item(["notes"], key="secret"))["value"] == {"text": "alice only"}


async def test_bad_store_requests_name_the_field(server: LoomServer) -> None:
    headers = {"x-api-key": KEYS["alice"]}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
        dotted = await http.put("/store/items", json={"namespace": ["a.b"], "key": "k", "value": {}})
        assert_error(dotted, 422)
        assert "namespace" in dotted.json()["detail"]
        not_a_dict = await http.put("/store/items", json={"namespace": ["a"], "key": "k", "value": [1, 2]})
        assert_error(not_a_dict, 422)
        assert "value" in not_a_dict.json()["detail"]
        assert_error(await http.get("/store/items", params={"key": "k"}), 422, "invalid_request")
        assert_error(await http.get("/store/items", params={"key": "k", "namespace": ".."}), 422, "invalid_request")
        assert_error(await http.post("/store/items/search", json={"limit": 0}), 422)
        assert_error(await http.post("/store/items/search", json={"query": "x"}), 422, "semantic_search_unavailable")
        indexed = await http.put("/store/items", json={"namespace": ["a"], "key": "k", "value": {}, "index": ["x"]})
        assert_error(indexed, 422)
        assert "index" in indexed.json()["detail"]
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
            assert_error(await anonymous.post("/store/namespaces", json={}), 401, "unauthorized")


async def test_ids_with_dots_have_a_store_of_their_own(server: LoomServer) -> None:
    """LangGraph refuses dots in namespace labels, and email identities have them: they must still work, apart."""
    email, lookalike = as_user(server, "john.smith@example.com"), as_user(server, "john%2Esmith@example%2Ecom")
    await email.store.put_item(["memories"], key="tone", value={"likes": "brevity"})
    assert (await email.store.get_item(["memories"], key="tone"))["value"] == {"likes": "brevity"}
    assert [i["key"] for i in (await email.store.search_items(["memories"]))["items"]] == ["tone"]
    assert (await email.store.list_namespaces())["namespaces"] == [["memories"]]
    for other in (lookalike, as_user(server, "alice")):  # the escaped spelling of the id is someone else
        assert await other.store.get_item(["memories"], key="tone") is None
        assert ["memories"] not in (await other.store.list_namespaces())["namespaces"]
    await email.store.delete_item(["memories"], key="tone")
    assert await email.store.get_item(["memories"], key="tone") is None


async def test_an_index_without_fields_embeds_the_whole_value(tmp_path: Path) -> None:
    """``store.index`` without ``fields`` takes LangGraph's default ``["$"]``: each value is embedded as JSON text."""
    embed = PROJECTS / "memo" / "src" / "memo_agent" / "embed.py"
    config = {
        "graphs": {"echo": f"{PROJECTS / 'greeter' / 'my-agent' / 'echo.py'}:graph"},
        "store": {"index": {"embed": f"{embed}:embed", "dims": 64}},
    }
    (tmp_path / "langgraph.json").write_text(json.dumps(config))
    with serving(tmp_path / "server", fixtures=False, LOOM_GRAPHS_CONFIG=str(tmp_path / "langgraph.json")) as live:
        client = get_client(url=live.url)
        await client.store.put_item(["memories"], "chess", {"content": "likes chess", "context": "told us"})
        await client.store.put_item(["memories"], "tea", {"content": "drinks green tea", "context": "told us"})
        found = (await client.store.search_items(["memories"], query="who likes chess?"))["items"]
    assert [item["key"] for item in found] == ["chess", "tea"] and found[0]["score"] > found[1]["score"]
