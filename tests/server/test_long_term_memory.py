"""Long-term memory through a live server: the assistant remembers per user, and forgets what ``client.store`` deletes.

Every role runs on the scripted OpenAI-compatible server, which logs every request, so the test reads exactly what
reached the model. Two API keys make two users; the store is scoped per user by the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from loom.processes import LoomServer
from tests.fixtures.openai_server import ScriptedOpenAI, text
from tests.fixtures.servers import serving

pytestmark = pytest.mark.live

KEYS = {"alice": "key-alice", "bob": "key-bob"}
ASK = "Write a short poem about my favourite colour"


@pytest.fixture
def server(tmp_path: Path, openai_server: ScriptedOpenAI) -> Iterator[LoomServer]:
    """Loom's own graphs, every model call on ``openai_server``, two users."""
    with serving(tmp_path / "server", fixtures=False, LOOM_API_KEYS=json.dumps(KEYS), **openai_server.env) as live:
        yield live


def prompt(body: dict[str, Any]) -> str:
    return json.dumps(body["messages"])


async def poem(client: LangGraphClient, openai_server: ScriptedOpenAI, **kwargs: Any) -> str:
    """Asks for a poem on a new thread; the prompt of the model request it made."""
    before = len(openai_server.requests)
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, kwargs.pop("assistant", "assistant"), input={"messages": [ASK]}, **kwargs)
    (body,) = openai_server.requests[before:]  # the keyword stage routes it: one call, the writer's
    return prompt(body)


async def test_a_remembered_fact_reaches_the_owners_next_threads_until_deleted(
    server: LoomServer, openai_server: ScriptedOpenAI
) -> None:
    openai_server.add(text("Roses are teal.", repeat=True))
    alice, bob = (get_client(url=server.url, api_key=KEYS[user]) for user in ("alice", "bob"))
    first = (await alice.threads.create())["thread_id"]
    said = await alice.runs.wait(first, "assistant", input={"messages": ["remember that my favourite colour is teal"]})

    assert isinstance(said, dict) and "my favourite colour is teal" in said["messages"][-1]["content"]
    assert openai_server.requests == [], "captured without a model call"
    [item] = (await alice.store.search_items(["memories"]))["items"]
    assert item["value"]["text"] == "my favourite colour is teal" and item["value"]["kind"] == "preference"
    assert item["value"]["source_thread"] == first and item["value"]["uses"] == 0

    assert "teal" in await poem(alice, openai_server)
    assert (await alice.store.get_item(["memories"], item["key"]))["value"]["uses"] == 1
    assert "teal" not in await poem(bob, openai_server)
    assert (await bob.store.search_items(["memories"]))["items"] == []

    assert "teal" not in await poem(alice, openai_server, config={"configurable": {"memory": False}})
    forgetful = await alice.assistants.create("assistant", config={"configurable": {"memory": False}})
    assert "teal" not in await poem(alice, openai_server, assistant=forgetful["assistant_id"])

    await alice.store.delete_item(["memories"], item["key"])
    assert "teal" not in await poem(alice, openai_server)
    assert openai_server.rejected == []
