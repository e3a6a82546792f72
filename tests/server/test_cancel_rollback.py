"""Cancel with action=rollback undoes the run; queued input never swallows a newer interrupt or a lost checkpoint."""

from __future__ import annotations

import pytest
from langgraph_sdk import get_client

from loom.processes import LoomServer
from tests.server.live import FIXTURE_INPUT, close_gate, finished, open_gate, start_gated

pytestmark = pytest.mark.live


async def test_cancel_with_rollback_restores_the_state_before_the_run(fixture_server: LoomServer) -> None:
    client = get_client(url=fixture_server.url)
    fresh = (await client.threads.create())["thread_id"]
    run = await start_gated(client, fresh)
    await client.runs.cancel(fresh, run["run_id"], wait=True, action="rollback")
    assert (await client.threads.get_state(fresh))["values"] == {}  # the first run's work is gone

    used = (await client.threads.create())["thread_id"]
    open_gate(fixture_server, used)
    before = await client.runs.wait(used, "gated", input=FIXTURE_INPUT)
    close_gate(fixture_server, used)
    second = await start_gated(client, used)
    await client.runs.cancel(used, second["run_id"], wait=True, action="rollback")
    assert (await client.threads.get_state(used))["values"] == before
    assert (await client.runs.get(used, second["run_id"]))["status"] == "cancelled"
    assert (await client.threads.get(used))["status"] == "idle"


async def test_input_queued_behind_a_run_that_ends_interrupted_is_refused(fixture_server: LoomServer) -> None:
    client = get_client(url=fixture_server.url)
    thread = (await client.threads.create())["thread_id"]
    asking = await client.runs.create(thread, "approval", input={"request": "refund", "hold": True})
    queued = await client.runs.create(thread, "approval", input={"request": "other"}, multitask_strategy="enqueue")
    open_gate(fixture_server, thread)  # only now may the first run reach its interrupt
    first = await finished(client, thread, asking["run_id"])
    refused = await finished(client, thread, queued["run_id"])
    assert first["status"] == "interrupted"
    assert refused["status"] == "error" and refused["error"]["error"] == "ThreadInterrupted"
    state = await client.threads.get_state(thread)
    assert state["interrupts"] and state["values"]["request"] == "refund"
    assert (await client.threads.get(thread))["status"] == "interrupted"
    answered = await client.runs.wait(thread, "approval", command={"resume": "approved"})
    assert answered["decision"] == "approved"


async def test_rolling_back_a_fork_restores_the_threads_latest_state_not_the_fork_point(
    fixture_server: LoomServer,
) -> None:
    client = get_client(url=fixture_server.url)
    thread = (await client.threads.create())["thread_id"]
    open_gate(fixture_server, thread)
    await client.runs.wait(thread, "gated", input=FIXTURE_INPUT)
    fork_point = (await client.threads.get_state(thread))["checkpoint"]["checkpoint_id"]
    await client.runs.wait(thread, "gated", input=FIXTURE_INPUT)
    latest = (await client.threads.get_state(thread))["values"]
    close_gate(fixture_server, thread)
    fork = await start_gated(client, thread, checkpoint_id=fork_point)
    await client.runs.cancel(thread, fork["run_id"], wait=True, action="rollback")
    assert (await client.threads.get_state(thread))["values"] == latest, "the state before the fork, not at its point"
    assert (await client.threads.get(thread))["status"] == "idle"


async def test_a_run_queued_at_a_checkpoint_a_rollback_removed_ends_in_error(fixture_server: LoomServer) -> None:
    """The checkpoint existed when the run was queued; the run before it was rolled back, taking it along.
    Started anyway, LangGraph would begin from an empty thread and call that success."""
    client = get_client(url=fixture_server.url)
    thread = (await client.threads.create())["thread_id"]
    running = await start_gated(client, thread)
    history = await client.threads.get_history(thread)
    [its_own, *_] = [state for state in history if state["metadata"].get("run_id") == running["run_id"]]
    at = its_own["checkpoint"]["checkpoint_id"]
    queued = await client.runs.create(
        thread, "gated", input=FIXTURE_INPUT, checkpoint_id=at, multitask_strategy="enqueue"
    )
    await client.runs.cancel(thread, running["run_id"], wait=True, action="rollback")
    open_gate(fixture_server, thread)
    refused = await finished(client, thread, queued["run_id"])
    assert refused["status"] == "error" and refused["error"]["error"] == "CheckpointGone", refused
    assert at in refused["error"]["message"]
    assert (await client.threads.get_state(thread))["values"] == {}  # nothing ran from nowhere
    assert (await client.runs.wait(thread, "gated", input=FIXTURE_INPUT))["log"]  # the thread takes the next run
