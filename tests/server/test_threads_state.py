"""Threads over HTTP: create/search/delete, state and history, state updates, forks from a checkpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError

from loom.processes import LoomServer
from tests.server.live import DONE, FIXTURE_INPUT, finished, open_gate, step_one_count

pytestmark = pytest.mark.live


async def test_thread_create_get_search_and_delete(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tag = {"suite": "threads", "case": "crud"}
    thread = await client.threads.create(metadata=tag)
    tid = thread["thread_id"]
    assert thread["status"] == "idle" and thread["metadata"] == tag
    assert (await client.threads.create(thread_id=tid, if_exists="do_nothing"))["thread_id"] == tid
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=tid, if_exists="raise")

    other = await client.threads.create(metadata={"suite": "threads", "case": "other"})
    await client.runs.wait(other["thread_id"], "approval", input={"request": "x"})
    assert [t["thread_id"] for t in await client.threads.search(metadata=tag)] == [tid]
    interrupted = await client.threads.search(metadata={"suite": "threads"}, status="interrupted")
    assert [t["thread_id"] for t in interrupted] == [other["thread_id"]]

    await client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
    assert await client.threads.search(metadata=tag) == []


async def test_state_and_history_of_a_finished_run(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    open_gate(server, tid)
    run = await client.runs.create(tid, "gated", input=FIXTURE_INPUT)
    await finished(client, tid, run["run_id"])

    state = await client.threads.get_state(tid)
    assert state["values"] == {"log": DONE} and state["next"] == []
    history = await client.threads.get_history(tid, limit=100)
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"], "newest first"
    assert [h["next"] for h in history] == [[], ["wait_for_gate"], ["step_one"], ["__start__"]]
    assert [h["values"]["log"] for h in history] == [DONE, ["step_one"], [], []]
    assert {h["metadata"]["run_id"] for h in history} == {run["run_id"]}
    parents = [h["parent_checkpoint"]["checkpoint_id"] for h in history[:-1]]
    assert parents == [h["checkpoint"]["checkpoint_id"] for h in history[1:]]

    middle = history[1]["checkpoint"]["checkpoint_id"]
    at = await client.threads.get_state(tid, checkpoint_id=middle)
    assert at["values"] == {"log": ["step_one"]} and at["next"] == ["wait_for_gate"]
    assert len(await client.threads.get_history(tid, limit=2)) == 2
    older = await client.threads.get_history(tid, limit=100, before=history[1]["checkpoint"])
    assert [h["checkpoint"]["checkpoint_id"] for h in older] == [h["checkpoint"]["checkpoint_id"] for h in history[2:]]


async def test_update_state_then_continue(server: LoomServer) -> None:
    """An edit while interrupted replaces the pending question (LangGraph semantics): continuing asks again."""
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input={"request": "invoice"})
    updated = await client.threads.update_state(tid, {"request": "invoice #7"})
    state = await client.threads.get_state(tid)
    assert state["values"]["request"] == "invoice #7" and state["next"] == ["ask_approval"]
    assert state["checkpoint"]["checkpoint_id"] == updated["checkpoint"]["checkpoint_id"]

    await client.runs.wait(tid, "approval", input=None)
    [asked] = (await client.threads.get_state(tid))["interrupts"]
    assert asked["value"] == {"question": "approve invoice #7?"}
    result = await client.runs.wait(tid, "approval", command={"resume": "ok"})
    assert result == {"request": "invoice #7", "decision": "ok"}


async def test_a_state_update_answers_its_checkpoint_as_langgraph_api_does(server: LoomServer) -> None:
    """``checkpoint``, and the ``configurable`` and ``checkpoint_id`` that JS clients (Studio, useStream) read,
    all with the id the client knows, never the owner-scoped key."""
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input={"request": "invoice"})
    updated: Any = await client.threads.update_state(tid, {"request": "invoice #8"})
    checkpoint = updated["checkpoint"]
    assert checkpoint["thread_id"] == tid and checkpoint["checkpoint_ns"] == ""
    shown = checkpoint["checkpoint_id"]
    assert updated == {"checkpoint": checkpoint, "configurable": checkpoint, "checkpoint_id": shown}
    assert (await client.threads.get_state(tid))["checkpoint"]["checkpoint_id"] == updated["checkpoint_id"]


async def test_fork_from_a_checkpoint_makes_a_branch(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input={"request": "refund"})
    asked = (await client.threads.get_state(tid))["checkpoint"]["checkpoint_id"]
    await client.runs.wait(tid, "approval", command={"resume": "yes"})
    first_head = (await client.threads.get_state(tid))["checkpoint"]["checkpoint_id"]
    with pytest.raises(ConflictError) as answered:  # LangGraph would silently replay "yes" there
        await client.runs.create(tid, "approval", command={"resume": "no"}, checkpoint_id=asked)
    assert answered.value.response.json()["code"] == "nothing_to_resume"

    start = (await client.threads.get_history(tid, limit=100))[-1]
    assert start["next"] == ["__start__"]
    fork = await client.runs.create(tid, "approval", input=None, checkpoint_id=start["checkpoint"]["checkpoint_id"])
    assert (await finished(client, tid, fork["run_id"]))["status"] == "interrupted"
    assert (await client.runs.wait(tid, "approval", command={"resume": "no"}))["decision"] == "no"

    original = await client.threads.get_state(tid, checkpoint_id=first_head)
    assert original["values"] == {"request": "refund", "decision": "yes"}, "the first branch is still there"
    history = await client.threads.get_history(tid, limit=100)
    assert history[0]["values"] == {"request": "refund", "decision": "no"}
    decisions: list[Any] = [h["values"].get("decision") for h in history]
    assert decisions.count("yes") == 1 and decisions.count("no") == 1


async def test_fork_with_new_input_reruns_from_the_checkpoint(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    open_gate(server, tid)
    await client.runs.wait(tid, "gated", input=FIXTURE_INPUT)
    history = await client.threads.get_history(tid, limit=100)
    after_step_one = next(h for h in history if h["next"] == ["wait_for_gate"])

    replay = await client.runs.wait(
        tid, "gated", input=None, checkpoint_id=after_step_one["checkpoint"]["checkpoint_id"]
    )
    assert replay["log"] == DONE
    assert step_one_count(server, tid) == 1, "a fork after step_one does not run it again"
    head = await client.threads.get_state(tid)
    assert head["checkpoint"]["checkpoint_id"] != history[0]["checkpoint"]["checkpoint_id"]
    fork_point = await client.threads.get_state(tid, checkpoint_id=head["parent_checkpoint"]["checkpoint_id"])
    assert fork_point["metadata"]["source"] == "fork"
    assert fork_point["parent_checkpoint"]["checkpoint_id"] == after_step_one["checkpoint"]["checkpoint_id"]
    original = await client.threads.get_state(tid, checkpoint_id=history[0]["checkpoint"]["checkpoint_id"])
    assert original["values"]["log"] == DONE, "the original branch is untouched"


async def test_every_timestamp_says_it_is_utc(server: LoomServer) -> None:
    """SQLite keeps no zone; an answer without one is local time to JavaScript's ``Date``."""
    client = get_client(url=server.url)
    created = await client.threads.create()
    await client.runs.wait(created["thread_id"], "approval", input={"request": "x"})
    thread = await client.threads.get(created["thread_id"])
    [run] = await client.runs.list(created["thread_id"])
    [assistant, *_] = await client.assistants.search()
    stamps = [
        *(created[k] for k in ("created_at", "updated_at")),
        *(thread[k] for k in ("created_at", "updated_at", "state_updated_at")),
        *(run[k] for k in ("created_at", "updated_at")),
        *(assistant[k] for k in ("created_at", "updated_at")),
    ]
    assert all(datetime.fromisoformat(stamp).utcoffset() is not None for stamp in stamps), stamps
