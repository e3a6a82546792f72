"""LangGraph Studio's path: `langgraph dev` reads langgraph.json and serves every graph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from loom.processes import LanggraphDev

pytestmark = pytest.mark.live


@pytest.fixture
def langgraph_dev(tmp_path: Path) -> Iterator[str]:
    """``langgraph dev`` on the project's own ``langgraph.json``, as Studio users start it."""
    server = LanggraphDev(tmp_path / "langgraph-dev").start()
    try:
        yield server.url
    finally:
        server.stop()


async def test_langgraph_dev_serves_the_assistant(langgraph_dev: str) -> None:
    client = get_client(url=langgraph_dev)
    assistants = await client.assistants.search(metadata={"created_by": "system"})
    assert "assistant" in {a["graph_id"] for a in assistants}
    thread = await client.threads.create()
    result = await client.runs.wait(
        thread["thread_id"],
        "assistant",
        input={"messages": [{"role": "user", "content": "Search my calendar for AI events"}]},
        context={"user_id": "demo"},
    )
    assert isinstance(result, dict) and result["route"]["specialist"] == "workspace_agent"
    state = await client.threads.get_state(thread["thread_id"])
    tool_messages = [m for m in state["values"]["messages"] if m["type"] == "tool"]
    assert tool_messages and "AI Workshop" in tool_messages[0]["content"]
