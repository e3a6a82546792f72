"""The default server on the real embedded model: concurrent runs share the model's slots and the server stays up.

Three concurrent runs used to crash the process (two threads decoding on one llama.cpp context); now one
in-process llama.cpp server schedules every request through its slots.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.fixtures.servers import serving

pytestmark = [pytest.mark.live, pytest.mark.embedded_model]
WRITER_REQUEST = "Write a two-line poem about the sea."  # the keyword router sends it to the content writer


async def test_eight_concurrent_runs_succeed_and_the_server_stays_up(tmp_path: Path) -> None:
    with serving(tmp_path / "server", fixtures=False, LOOM_MODEL="local:smollm2", LOOM_MODEL_MAX_TOKENS="24") as live:
        client = get_client(url=live.url)

        async def one_run() -> str:
            thread = await client.threads.create()
            run = await client.runs.create(
                thread["thread_id"], "assistant", input={"messages": [{"role": "user", "content": WRITER_REQUEST}]}
            )
            await client.runs.join(thread["thread_id"], run["run_id"])
            finished = await client.runs.get(thread["thread_id"], run["run_id"])
            return str(finished["status"])

        statuses = await asyncio.gather(*(one_run() for _ in range(8)))
        assert statuses == ["success"] * 8
        assert await one_run() == "success"  # a ninth, after the burst
        assert live.process is not None and live.process.poll() is None
