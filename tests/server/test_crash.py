"""Kill -9 (or stop) the server mid-run, start a new one on the same data: the run resumes without redoing work."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.fixtures.servers import new_server
from tests.server.live import (
    FIXTURE_INPUT,
    collect,
    finished,
    open_gate,
    start_gated,
    step_one_count,
    until,
    wait_for_state,
)

pytestmark = pytest.mark.live


async def test_killed_run_is_recovered_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    data_dir = tmp_path / "crash"
    first = new_server(data_dir).start()
    try:
        client = get_client(url=first.url)
        tid = (await client.threads.create())["thread_id"]
        run = await start_gated(client, tid)
        rid = run["run_id"]
        # step_one_done is emitted inside step_one; no event says its checkpoint is on disk, the state does
        await wait_for_state(client, tid, lambda state: state["next"] == ["wait_for_gate"])
        assert (await client.threads.get_state(tid))["values"]["log"] == ["step_one"]
    finally:
        first.kill()

    second = new_server(data_dir).start()
    try:
        client = get_client(url=second.url)
        assert (await client.runs.get(tid, rid))["status"] in ("pending", "running")
        async with aclosing(client.runs.join_stream(tid, rid)) as parts:
            seen = await until(parts, lambda part: part.event == "recovered")
            open_gate(second, tid)
            seen += await collect(parts)
        assert seen[0].event == "metadata" and seen[0].data == {"run_id": rid, "attempt": 2}
        assert seen[1].data == {"run_id": rid, "attempt": 2}
        assert seen[-1].event == "end" and seen[-1].data["status"] == "success"
        assert [next(iter(p.data)) for p in seen if p.event == "updates"] == ["wait_for_gate"]

        recovered = await client.runs.get(tid, rid)
        assert recovered["status"] == "success" and recovered["attempt"] == 2
        assert (await client.threads.get_state(tid))["values"]["log"] == ["step_one", "gate_passed"]
        assert step_one_count(second, tid) == 1, "the checkpointed node did not run again"
        assert (await client.threads.get(tid))["status"] == "idle"
        assert (await client.runs.wait(tid, "gated", input=FIXTURE_INPUT))["log"][-1] == "gate_passed"

        other = (await client.threads.create())["thread_id"]
        stopped = await start_gated(client, other)
    finally:
        second.stop()  # a graceful stop leaves the run to the next start, as a crash does

    third = new_server(data_dir).start()
    try:
        client = get_client(url=third.url)
        open_gate(third, other)
        resumed = await finished(client, other, stopped["run_id"])
        assert resumed["status"] == "success" and resumed["attempt"] == 2
        assert (await client.threads.get_state(other))["values"]["log"] == ["step_one", "gate_passed"]
    finally:
        third.stop()
