"""Loom serves LangGraph projects it did not write, from their own langgraph.json, as ``langgraph dev`` would.

The projects in ``tests/data/projects`` are laid out as users lay theirs out: a hyphenated folder, a
``src/`` package with absolute imports, a graph with its own context schema, an async factory taking a
config, an uncompiled ``StateGraph`` named by module path, ``env`` in the config. None imports Loom.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import LoomServer

pytestmark = pytest.mark.live
PROJECTS = Path(__file__).parents[1] / "data" / "projects"


def serve(project: str, tmp_path: Path) -> Iterator[LoomServer]:
    config = PROJECTS / project / "langgraph.json"
    server = LoomServer(tmp_path / "server", {"LOOM_MODEL": "fake:echo"}, ["--config", str(config)]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def greeter(tmp_path: Path) -> Iterator[LoomServer]:
    yield from serve("greeter", tmp_path)


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[LoomServer]:
    yield from serve("notes", tmp_path)


async def test_a_hyphenated_project_with_its_own_context_schema(greeter: LoomServer) -> None:
    client = get_client(url=greeter.url)
    assistants = await client.assistants.search()
    assert [a["graph_id"] for a in assistants] == ["greeter"]
    drawing = await client.assistants.get_graph("greeter")
    assert {node["id"] for node in drawing["nodes"]} >= {"greet"}
    thread = await client.threads.create()
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "greeter",
            input={"messages": [{"role": "user", "content": "hi"}]},
            context={"greeting": "Bonjour"},
            stream_mode=["values", "updates"],
        )
    ]
    assert {"values", "updates"} <= {part.event for part in parts}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "Bonjour, demo! (turn 1)"  # identity from the server, env
    await client.runs.wait(thread["thread_id"], "greeter", input={"messages": [{"role": "user", "content": "again"}]})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "Hello, demo! (turn 2)"  # the schema's default
    history = await client.threads.get_history(thread["thread_id"])
    assert len(history) >= 4


async def test_context_that_does_not_fit_the_schema_is_a_422_naming_the_field(greeter: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=greeter.url) as http:
        thread = (await http.post("/threads", json={})).json()
        answer = await http.post(
            f"/threads/{thread['thread_id']}/runs",
            json={"assistant_id": "greeter", "input": {"messages": []}, "context": {"greeting": ["not", "text"]}},
        )
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_context" and "context.greeting" in answer.json()["detail"]


async def test_a_src_package_through_a_factory_and_a_module_path(notes: LoomServer) -> None:
    client = get_client(url=notes.url)
    assert sorted(a["graph_id"] for a in await client.assistants.search()) == ["counter", "notes"]
    thread = await client.threads.create()
    for text in ("milk", "eggs"):
        await client.runs.wait(thread["thread_id"], "notes", input={"messages": [{"role": "user", "content": text}]})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "2 notes: milk; eggs"
    counted = await client.runs.wait(None, "counter", input={"messages": [], "count": 41})
    assert isinstance(counted, dict) and counted["count"] == 42
