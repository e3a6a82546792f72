"""Helpers for the live-server tests: gates, reading streams, raw HTTP (servers: ``tests.fixtures.servers``).

A server process costs seconds to start on a small machine, so test modules share one (the ``server``
fixture) and every test works on its own threads; tests that need special settings start their own.
Tests synchronise on stream events (``until``), never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from loom.processes import LoomServer

DEADLINE_S = 60.0
"""Upper bound on any wait, so a broken server fails a test instead of hanging it."""
FIXTURE_INPUT: dict[str, Any] = {"log": []}
DONE = ["step_one", "gate_passed"]
"""The log of a finished run of the ``gated`` fixture graph."""
MAX_BODY_BYTES = 4096
"""The shared server's body limit (``LOOM_MAX_BODY_BYTES``), small enough to test 413 cheaply."""


# gates (see tests/server/fixture_graphs.py) -----------------------------------------------------
def gates(server: LoomServer) -> Path:
    path = server.data_dir / "gates"
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_gate(server: LoomServer, thread_id: str) -> None:
    (gates(server) / f"{thread_id}.open").write_text("")


def close_gate(server: LoomServer, thread_id: str) -> None:
    (gates(server) / f"{thread_id}.open").unlink(missing_ok=True)


def step_one_count(server: LoomServer, thread_id: str) -> int:
    counter = gates(server) / f"{thread_id}.step_one"
    return int(counter.read_text()) if counter.exists() else 0


# streams ----------------------------------------------------------------------------------------
def is_custom(name: str) -> Callable[[StreamPart], bool]:
    return lambda part: part.event == "custom" and isinstance(part.data, dict) and part.data.get("event") == name


async def until(parts: AsyncIterator[StreamPart], done: Callable[[StreamPart], bool]) -> list[StreamPart]:
    """Read ``parts`` up to and including the first that satisfies ``done``."""
    seen: list[StreamPart] = []
    async with asyncio.timeout(DEADLINE_S):
        async for part in parts:
            seen.append(part)
            if done(part):
                return seen
    raise AssertionError(f"stream ended before the awaited event; saw {[p.event for p in seen]}")


async def collect(parts: AsyncIterator[StreamPart]) -> list[StreamPart]:
    async with asyncio.timeout(DEADLINE_S):
        return [part async for part in parts]


async def start_gated(client: LangGraphClient, thread_id: str, **kwargs: Any) -> dict[str, Any]:
    """A background gated run that has finished ``step_one`` and now waits on its gate."""
    run = await client.runs.create(
        thread_id, "gated", input=FIXTURE_INPUT, stream_mode=["custom", "updates", "values"], **kwargs
    )
    async with aclosing(client.runs.join_stream(thread_id, run["run_id"])) as parts:
        await until(parts, is_custom("step_one_done"))
    return dict(run)


async def finished(client: LangGraphClient, thread_id: str, run_id: str) -> dict[str, Any]:
    """The run record once the run has ended (``join`` returns when its stream closes)."""
    async with asyncio.timeout(DEADLINE_S):
        await client.runs.join(thread_id, run_id)
    return dict(await client.runs.get(thread_id, run_id))


async def wait_for_state(client: LangGraphClient, thread_id: str, done: Callable[[dict[str, Any]], bool]) -> None:
    """Poll thread state until ``done``: only for facts no event announces (a checkpoint being on disk)."""
    async with asyncio.timeout(DEADLINE_S):
        while not done(dict(await client.threads.get_state(thread_id))):
            await asyncio.sleep(0.05)


# raw HTTP ----------------------------------------------------------------------------------------
def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Every error is JSON with a human ``detail`` and a machine ``code``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# the keyed server (``keyed_server`` in tests/server/conftest.py) ---------------------------------
KEYS = {"alice": "ka", "bob": "kb"}
"""Its users' API keys; only alice has ``write`` beyond the default ``read``."""
ALICE, BOB = {"x-api-key": "ka"}, {"x-api-key": "kb"}
CHART = {"messages": [{"role": "user", "content": "Create a chart from this data: Q1 120, Q2 150, Q3 90"}]}


async def thread_with_run(http: httpx.AsyncClient, thread_id: str | None = None) -> str:
    """A thread with one finished ``assistant`` run that drew a chart (an artifact)."""
    body = {"thread_id": thread_id} if thread_id else {}
    tid: str = (await http.post("/threads", json=body)).json()["thread_id"]
    done = await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "assistant", "input": CHART})
    assert done.status_code == 200 and "__error__" not in done.json(), done.text
    return tid
