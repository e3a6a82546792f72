"""Keep-alive bytes while a run is silent (``LOOM_KEEPALIVE_S``): SSE ``: heartbeat`` comments, newlines before
``/wait``'s and join's JSON. The gated fixture graph holds the run until the test opens its gate, so the keep-alive
is the only thing the server can send until then: no sleeps, no timing thresholds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from langgraph_sdk import get_client

from loom.processes import LoomServer
from tests.fixtures.servers import serving
from tests.server.live import DEADLINE_S, FIXTURE_INPUT, open_gate

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("keepalive"), LOOM_KEEPALIVE_S="0.05") as live:
        yield live


@pytest.fixture
async def http(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE_S) as client:
        yield client


async def new_thread(http: httpx.AsyncClient) -> str:
    thread_id = str(uuid.uuid4())
    assert (await http.post("/threads", json={"thread_id": thread_id})).status_code == 200
    return thread_id


async def waited_body(response: httpx.Response, server: LoomServer, thread_id: str) -> bytes:
    """The whole body; the gate opens once the first bytes (a keep-alive: the run cannot end before) are in."""
    assert response.status_code == 200, await response.aread()
    assert response.headers["content-type"].startswith("application/json")
    chunks = response.aiter_raw()
    first = await anext(chunks)
    assert first.strip() == b"", f"the run is held at its gate, so only keep-alive can come first: {first!r}"
    open_gate(server, thread_id)
    return first + b"".join([chunk async for chunk in chunks])


async def test_wait_sends_newlines_until_the_values(server: LoomServer, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    body = {"assistant_id": "gated", "input": FIXTURE_INPUT}
    async with http.stream("POST", f"/threads/{thread_id}/runs/wait", json=body) as response:
        raw = await waited_body(response, server, thread_id)
        assert response.headers["location"].endswith("/join")
    assert raw.startswith(b"\n")
    assert "gate_passed" in orjson.loads(raw)["log"]  # what langgraph-sdk's wait and join decode with


async def test_join_sends_newlines_and_the_sdk_reads_the_values(server: LoomServer, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    client = get_client(url=server.url)
    run = await client.runs.create(thread_id, "gated", input=FIXTURE_INPUT)
    sdk_join = asyncio.create_task(client.runs.join(thread_id, run["run_id"]))
    async with http.stream("GET", f"/threads/{thread_id}/runs/{run['run_id']}/join") as response:
        raw = await waited_body(response, server, thread_id)
    assert "gate_passed" in orjson.loads(raw)["log"]
    async with asyncio.timeout(DEADLINE_S):
        assert "gate_passed" in (await sdk_join)["log"]


async def test_a_silent_sse_stream_gets_heartbeat_comments(server: LoomServer, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    body = {"assistant_id": "gated", "input": FIXTURE_INPUT, "stream_mode": ["updates"]}
    lines: list[str] = []
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        async for line in response.aiter_lines():
            lines.append(line)
            if line == ": heartbeat":
                open_gate(server, thread_id)
    assert ": heartbeat" in lines
    assert "event: end" in lines, "the stream still ends as before"
    assert any("gate_passed" in line for line in lines)
