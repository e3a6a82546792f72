"""LangGraph Studio's path: `langgraph dev` reads langgraph.json and serves every graph."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import free_port

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.live


@pytest.fixture
def langgraph_dev(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "langgraph"),
        "dev",
        "--no-browser",
        "--no-reload",
        "--port",
        str(port),
    ]
    log = (tmp_path / "langgraph-dev.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, tmp_path / "langgraph-dev.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"langgraph dev exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)  # polling a starting process, not synchronising test steps
    raise TimeoutError(f"langgraph dev not ready:\n{log.read_text()[-3000:]}")


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
