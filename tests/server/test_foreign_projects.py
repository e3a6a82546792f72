"""Loom serves LangGraph projects it did not write, from their own langgraph.json, as ``langgraph dev`` would.

The projects in ``tests/data/projects`` are laid out as users lay theirs out: a hyphenated folder, a
``src/`` package with absolute imports, a graph with its own context schema, an async factory taking a
config, an uncompiled ``StateGraph`` named by module path, ``env`` in the config, and (``memo``) a package
installed from its own ``pyproject.toml`` whose graph keeps memories in a store with a semantic index.
None imports Loom.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.graph import START, MessagesState, StateGraph
from langgraph_sdk import get_client
from pydantic import BaseModel

from loom.processes import LoomServer
from server.engine.context import validate_context
from server.errors import ApiError
from tests.fixtures.openai_server import ScriptedOpenAI, call, last_is_tool, text
from tests.fixtures.servers import new_server, serving

pytestmark = pytest.mark.live
PROJECTS = Path(__file__).parents[1] / "data" / "projects"


def serve(project: str, tmp_path: Path) -> Iterator[LoomServer]:
    config = PROJECTS / project / "langgraph.json"
    with serving(tmp_path / "server", fixtures=False, project=config) as server:
        yield server


@pytest.fixture
def greeter(tmp_path: Path) -> Iterator[LoomServer]:
    yield from serve("greeter", tmp_path)


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[LoomServer]:
    yield from serve("notes", tmp_path)


async def test_a_hyphenated_project_with_its_own_context_schema(greeter: LoomServer) -> None:
    client = get_client(url=greeter.url)
    assistants = await client.assistants.search()
    assert sorted(a["graph_id"] for a in assistants) == ["echo", "greeter"]
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
            stream_mode=["values", "updates", "messages-tuple"],
        )
    ]
    assert {"values", "updates", "messages"} <= {part.event for part in parts}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "Bonjour, demo! (turn 1)"  # identity from the server, env
    await client.runs.wait(thread["thread_id"], "greeter", input={"messages": [{"role": "user", "content": "again"}]})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "Hello, demo! (turn 2)"  # the schema's default
    history = await client.threads.get_history(thread["thread_id"])
    assert len(history) >= 4


async def test_context_that_does_not_fit_the_schema_is_a_422_naming_the_field(greeter: LoomServer) -> None:
    """For a run, and for a cron at its creation (not each of its runs failing later): both are prepared alike."""
    body = {"assistant_id": "greeter", "input": {"messages": []}, "context": {"greeting": ["not", "text"]}}
    async with httpx.AsyncClient(base_url=greeter.url) as http:
        thread = (await http.post("/threads", json={})).json()
        answer = await http.post(f"/threads/{thread['thread_id']}/runs", json=body)
        cron = await http.post("/runs/crons", json={**body, "schedule": "0 * * * *"})
    for refused in (answer, cron):
        assert refused.status_code == 422
        assert refused.json()["code"] == "invalid_context" and "context.greeting" in refused.json()["detail"]


async def test_a_context_schema_that_validates_to_an_empty_dict_is_the_graph_s_own(greeter: LoomServer) -> None:
    """A TypedDict context validates ``{}`` to ``{}``: the graph gets that, not Loom's own ``RunContext``."""
    client = get_client(url=greeter.url)
    said = await client.runs.wait(None, "echo", input={"said": "hi"}, context={})
    assert said == {"said": "hi", "heard": {}}
    toned = await client.runs.wait(None, "echo", input={"said": "hi"}, context={"tone": "dry"})
    assert toned == {"said": "hi", "heard": {"tone": "dry"}}


async def test_a_typeddict_context_may_leave_out_keys_but_not_mistype_them(greeter: LoomServer) -> None:
    """LangGraph hands a TypedDict context over as the dict it was given, required keys or not (the
    new-langgraph-project template runs without context under ``langgraph dev``); a key that is there is still
    checked."""
    client = get_client(url=greeter.url)
    heard = await client.runs.wait(None, "echo", input={"said": "x"})
    assert heard == {"said": "x", "heard": {}}
    async with httpx.AsyncClient(base_url=greeter.url) as http:
        body = {"assistant_id": "echo", "input": {"said": "x"}, "context": {"tone": 5}}
        answer = await http.post("/runs/wait", json=body)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_context"
    assert answer.json()["detail"].startswith("context.tone:")


@dataclass
class Needed:
    tone: str


class NeededModel(BaseModel):
    tone: str


@pytest.mark.parametrize("schema", [Needed, NeededModel])
def test_dataclass_and_pydantic_contexts_keep_their_required_fields(schema: type) -> None:
    """LangGraph builds these from the context, so a missing field would fail inside the run: a 422 instead."""
    graph = StateGraph(MessagesState, context_schema=schema).add_node("n", lambda state: {}).add_edge(START, "n")
    with pytest.raises(ApiError) as refused:
        validate_context(graph.compile(), {})
    assert (refused.value.status, refused.value.code) == (422, "invalid_context")
    assert str(refused.value).startswith("context.tone:")


async def test_config_configurable_is_the_context_when_a_request_sends_none(greeter: LoomServer) -> None:
    """As langgraph-api: a graph with its own context schema takes the request's ``config.configurable`` as its
    context when the request sends no ``context`` (only the schema's keys, over an assistant's context); a
    request with both is refused."""
    client = get_client(url=greeter.url)
    hello = {"messages": [{"role": "user", "content": "x"}]}
    salut = {"configurable": {"greeting": "Salut", "unrelated": 1}}
    said = await client.runs.wait(None, "greeter", input=hello, config=salut)
    assert isinstance(said, dict) and said["messages"][-1]["content"].startswith("Salut, demo")
    spanish = await client.assistants.create("greeter", context={"greeting": "Hola"})
    said = await client.runs.wait(None, spanish["assistant_id"], input=hello, config=salut)
    assert isinstance(said, dict) and said["messages"][-1]["content"].startswith("Salut, demo")
    heard = await client.runs.wait(None, "echo", input={"said": "x"}, config={"configurable": {"tone": "dry", "x": 1}})
    assert isinstance(heard, dict) and heard["heard"] == {"tone": "dry"}
    cron = await client.crons.create("greeter", schedule="0 0 1 1 *", input=hello, config=salut)
    assert cron["payload"]["context"] == {"greeting": "Salut"}
    async with httpx.AsyncClient(base_url=greeter.url) as http:
        both = {"assistant_id": "greeter", "input": hello, "config": salut, "context": {"greeting": "Hi"}}
        answer = await http.post("/runs/wait", json=both)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"
    assert answer.json()["detail"].startswith("context:")


async def test_a_src_package_through_a_factory_and_a_module_path(notes: LoomServer) -> None:
    client = get_client(url=notes.url)
    assert sorted(a["graph_id"] for a in await client.assistants.search()) == ["counter", "notes"]
    assert {node["id"] for node in (await client.assistants.get_graph("notes"))["nodes"]} >= {"take_note"}
    thread = await client.threads.create()
    first = {"messages": [{"role": "user", "content": "milk"}]}
    modes = ["values", "updates", "messages-tuple"]
    parts = [part async for part in client.runs.stream(thread["thread_id"], "notes", input=first, stream_mode=modes)]
    assert {"values", "updates", "messages"} <= {part.event for part in parts}
    await client.runs.wait(thread["thread_id"], "notes", input={"messages": [{"role": "user", "content": "eggs"}]})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "2 notes: milk; eggs"
    assert len(await client.threads.get_history(thread["thread_id"])) >= 4
    # the factory takes a config, so every run rebuilds the graph with that run's config
    pipes = await client.assistants.create("notes", config={"configurable": {"separator": " | "}})
    note = {"messages": [{"role": "user", "content": "tea"}]}
    piped = await client.runs.wait(thread["thread_id"], pipes["assistant_id"], input=note)
    assert isinstance(piped, dict) and piped["messages"][-1]["content"] == "3 notes: milk | eggs | tea"
    plus = await client.runs.wait(thread["thread_id"], "notes", input=note, config={"configurable": {"separator": "+"}})
    assert isinstance(plus, dict) and plus["messages"][-1]["content"] == "4 notes: milk+eggs+tea+tea"
    recapping = await client.assistants.create("notes", config={"configurable": {"recap": True}})
    drawn = await client.assistants.get_graph(recapping["assistant_id"])  # as that assistant builds it
    assert {node["id"] for node in drawn["nodes"]} >= {"take_note", "recap"}
    assert "recap" not in {node["id"] for node in (await client.assistants.get_graph("notes"))["nodes"]}
    counted = await client.runs.wait(None, "counter", input={"messages": [], "count": 41})
    assert isinstance(counted, dict) and counted["count"] == 42


KEYS = {"alice": "key-alice", "bob": "key-bob"}


@pytest.fixture
def memo(tmp_path: Path, openai_server: ScriptedOpenAI) -> Iterator[LoomServer]:
    """The memo project installed as its user would (``pip install .``), here into a folder of its own."""
    project = shutil.copytree(PROJECTS / "memo", tmp_path / "memo")  # the build writes beside the sources
    site = tmp_path / "site"
    uv = Path(sys.executable).parent / "uv"
    install = [str(uv), "pip", "install", "-q", "-p", sys.executable, "--no-deps", "--no-build-isolation"]
    subprocess.run([*install, "--target", str(site), str(project)], check=True, capture_output=True)
    env = {**openai_server.env, "LOOM_API_KEYS": json.dumps(KEYS), "PYTHONPATH": str(site)}
    with serving(tmp_path / "server", fixtures=False, project=project / "langgraph.json", **env) as server:
        yield server


def system_prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


def recalled(*facts: str) -> Any:
    """A request whose system prompt lists every one of ``facts`` among the recalled memories."""
    return lambda body: all(f"- {fact}" in system_prompt(body) for fact in facts)


CAT, COFFEE, CITY = (
    "The user's cat is called Miso",
    "The user drinks coffee black without sugar",
    "The user lives in Lisbon near the river",
)


async def test_a_project_whose_graph_and_client_share_the_users_store(
    memo: LoomServer, openai_server: ScriptedOpenAI
) -> None:
    alice = get_client(url=memo.url, api_key=KEYS["alice"])
    assert [a["graph_id"] for a in await alice.assistants.search()] == ["memo"]
    drawing = await alice.assistants.get_graph("memo")
    assert {node["id"] for node in drawing["nodes"]} >= {"call_model", "store_memory"}

    # turn 1: the model decides to remember; the graph writes ("memories",) through runtime.store
    openai_server.add(
        call("remember", {"content": CAT}, when=lambda body: "You are a careful archivist" in system_prompt(body)),
        text("I will remember that your cat is called Miso.", when=last_is_tool),
    )
    thread = (await alice.threads.create())["thread_id"]
    parts = [
        part
        async for part in alice.runs.stream(
            thread,
            "memo",
            input={"messages": [{"role": "user", "content": "Remember that my cat is called Miso"}]},
            context={"persona": "a careful archivist"},
            stream_mode=["values", "updates", "messages-tuple"],
        )
    ]
    assert {"values", "updates", "messages"} <= {part.event for part in parts}, [p for p in parts if p.event == "error"]
    assert "- nothing yet" in system_prompt(openai_server.requests[0])
    streamed = "".join(
        p.data[0]["content"] for p in parts if p.event == "messages" and p.data[0]["type"] == "AIMessageChunk"
    )
    assert "your cat is called Miso" in streamed

    # what the graph wrote is the user's item in client.store, under the namespace the graph named
    found = await alice.store.search_items(["memories"])
    assert [item["value"] for item in found["items"]] == [{"content": CAT}]
    assert found["items"][0]["namespace"] == ["memories"]

    # and what the client writes, the graph reads; semantic search ranks the closest item first
    await alice.store.put_item(["memories"], key="coffee", value={"content": COFFEE}, index=["content"])
    await alice.store.put_item(["memories"], key="city", value={"content": CITY})
    ranked = await alice.store.search_items(["memories"], query="How does the user take their coffee?")
    assert ranked["items"][0]["key"] == "coffee" and ranked["items"][0]["score"] > ranked["items"][1]["score"]

    # turn 2 on the same thread: the graph recalls by similarity (2 memories, MEMO_RECALL_LIMIT in env)
    openai_server.add(text("Miso, and black without sugar.", when=recalled(CAT, COFFEE)))
    question = "What is my cat called and how do I take my coffee?"
    await alice.runs.wait(thread, "memo", input={"messages": [{"role": "user", "content": question}]})
    assert CITY not in system_prompt(openai_server.requests[-1])
    state = await alice.threads.get_state(thread)
    assert state["values"]["messages"][-1]["content"] == "Miso, and black without sugar."
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai", "tool", "ai", "human", "ai"]
    history = await alice.threads.get_history(thread)
    assert len(history) >= 6

    # another user: none of alice's items, through the API or through the graph's runtime.store
    bob = get_client(url=memo.url, api_key=KEYS["bob"])
    assert (await bob.store.search_items(["memories"]))["items"] == []
    assert (await bob.store.search_items(["memories"], query="coffee"))["items"] == []
    openai_server.add(text("I don't know your cat yet.", when=lambda body: "- nothing yet" in system_prompt(body)))
    answer = await bob.runs.wait(
        None, "memo", input={"messages": [{"role": "user", "content": "What is my cat called?"}]}
    )
    assert isinstance(answer, dict) and answer["messages"][-1]["content"] == "I don't know your cat yet."
    assert openai_server.unused == []


@pytest.fixture
def typed(tmp_path: Path) -> Iterator[LoomServer]:
    yield from serve("typed", tmp_path)


async def test_typing_typeddict_state_input_and_context_on_python_3_11(typed: LoomServer) -> None:
    """pydantic refuses ``typing.TypedDict`` before Python 3.12; LangGraph takes it, and so does Loom: the
    schemas are the project's own (nested ones too), runs are checked against them and stream, state reads."""
    client = get_client(url=typed.url)
    schemas = await client.assistants.get_schemas("typed")
    assert schemas["input_schema"]["title"] == "Input" and set(schemas["input_schema"]["properties"]) == {
        "messages",
        "topic",
    }
    assert set(schemas["output_schema"]["properties"]) == {"messages"}
    assert set(schemas["state_schema"]["properties"]) == {"messages", "topic", "seen", "style"}
    assert schemas["context_schema"]["$defs"]["Style"]["properties"]["shout"]["type"] == "boolean"
    thread = await client.threads.create()
    hello = {"messages": [{"role": "user", "content": "hi"}], "topic": "tea"}
    context = {"tone": "dry", "style": {"shout": True}}
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"], "typed", input=hello, context=context, stream_mode=["values", "updates"]
        )
    ]
    assert {"values", "updates"} <= {part.event for part in parts}, [p for p in parts if p.event == "error"]
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "DRY NOTE ON TEA" and state["values"]["seen"] == ["tea"]
    async with httpx.AsyncClient(base_url=typed.url) as http:
        mistyped = {"assistant_id": "typed", "input": hello, "context": {"style": {"shout": "very"}}}
        answer = await http.post("/runs/wait", json=mistyped)
        assert answer.status_code == 422 and answer.json()["detail"].startswith("context.style.shout:")
        unknown = await http.post("/runs/wait", json={"assistant_id": "typed", "input": {"topik": "x"}})
        assert unknown.status_code == 422 and unknown.json()["detail"].startswith("input.topik:")


async def test_a_server_runtime_factory_is_called_per_user_and_access_context(tmp_path: Path) -> None:
    """As langgraph-api calls a factory taking ``ServerRuntime``: for runs (with the caller and the run's context),
    state reads and updates, schemas and drawings, each time with the caller and their own store."""
    calls = tmp_path / "calls.jsonl"
    config = PROJECTS / "toolbox" / "langgraph.json"
    server = new_server(tmp_path / "server", fixtures=False, project=config, TOOLBOX_CALLS=str(calls)).start()
    try:
        ada, bob = (get_client(url=server.url, headers={"x-user": n}) for n in ("ada", "bob"))
        drawn = {node["id"] for node in (await ada.assistants.get_graph("toolbox"))["nodes"]}
        assert {"agent", "search", "delete_user"} <= drawn
        assert "delete_user" not in {node["id"] for node in (await bob.assistants.get_graph("toolbox"))["nodes"]}
        assert "messages" in (await bob.assistants.get_schemas("toolbox"))["input_schema"]["properties"]
        thread = (await ada.threads.create())["thread_id"]
        hello = {"messages": [{"role": "user", "content": "hi"}]}
        said = await ada.runs.wait(thread, "toolbox", input=hello, context={"clock": True})
        assert isinstance(said, dict) and said["messages"][-1]["content"] == "ada may use search, delete_user, clock"
        said = await bob.runs.wait(None, "toolbox", input=hello)
        assert isinstance(said, dict) and said["messages"][-1]["content"] == "bob may use search"
        assert (await ada.threads.get_state(thread))["values"]["messages"][0]["content"] == "hi"
        assert len(await ada.threads.get_history(thread)) >= 2
        await ada.threads.update_state(thread, {"messages": [{"role": "user", "content": "edited"}]}, as_node="agent")
        mine = await ada.store.get_item(["toolbox"], "last_tools")
        assert mine is not None and mine["value"] == {"tools": ["search", "delete_user", "clock"]}
        theirs = await bob.store.get_item(["toolbox"], "last_tools")
        assert theirs is not None and theirs["value"] == {"tools": ["search"]}
        async with httpx.AsyncClient(base_url=server.url, headers={"x-user": "eve"}) as eve:
            refused = await eve.get("/assistants/toolbox/schemas")  # the factory raises for eve
        assert refused.status_code == 500 and refused.json()["code"] == "graph_factory_failed"
        assert "assistants.read (PermissionError: eve may not use the toolbox)" in refused.json()["detail"]
    finally:
        server.stop()
    made = [json.loads(line) for line in calls.read_text().splitlines()]
    seen = {(call["access"], call["user"]) for call in made}
    assert ("assistants.read", None) in seen  # at start, for the default assistant's name and the input checks
    for access in ("assistants.read", "threads.create_run", "threads.read", "threads.update"):
        assert (access, "ada") in seen, (access, seen)
    assert {("assistants.read", "bob"), ("threads.create_run", "bob")} <= seen
    runs = [call for call in made if call["access"] == "threads.create_run"]
    assert [(call["user"], call["context"]) for call in runs] == [("ada", {"clock": True}), ("bob", {"clock": False})]


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[LoomServer]:
    yield from serve("broken", tmp_path)


async def test_a_graph_that_fails_to_load_is_named_and_the_others_are_served(broken: LoomServer) -> None:
    client = get_client(url=broken.url)
    assert [a["graph_id"] for a in await client.assistants.search()] == ["echo"]
    assert await client.runs.wait(None, "echo", input={"said": "hi"}) == {"said": "hi", "heard": {}}
    async with httpx.AsyncClient(base_url=broken.url) as http:
        for answer in (
            await http.get("/assistants/broken"),
            await http.post("/runs/wait", json={"assistant_id": "broken", "input": {}}),
            await http.post("/assistants", json={"graph_id": "broken"}),
            await http.post("/threads", json={"graph_id": "broken"}),
        ):
            assert answer.status_code == 500 and answer.json()["code"] == "graph_failed_to_load"
            assert answer.json()["detail"].startswith("graph 'broken' failed to load when the server started")
            assert "ModuleNotFoundError: No module named 'a_package_nobody_installed'" in answer.json()["detail"]
    assert "graph 'broken' (./broken.py:graph) failed to load and is not served" in broken.log.read_text()
