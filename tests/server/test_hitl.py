"""Human in the loop over HTTP: interrupt, resume, and the 409s that keep an interrupt from being lost."""

from __future__ import annotations

import asyncio

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, UnprocessableEntityError

from loom.processes import LoomServer
from tests.server.live import collect, finished

pytestmark = pytest.mark.live


REFUND = {"request": "refund"}


async def test_interrupt_then_resume(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    parts = await collect(client.runs.stream(tid, "approval", input=REFUND, stream_mode=["updates", "values"]))

    question = {"question": "approve refund?"}
    interrupt_updates = [p.data["__interrupt__"] for p in parts if p.event == "updates" and "__interrupt__" in p.data]
    assert [[i["value"] for i in update] for update in interrupt_updates] == [[question]]
    end = parts[-1]
    assert end.event == "end" and end.data["status"] == "interrupted"
    [pending] = end.data["interrupts"]
    assert pending["value"] == question and pending["id"] == interrupt_updates[0][0]["id"]
    run_id = parts[0].data["run_id"]
    assert (await client.runs.get(tid, run_id))["status"] == "interrupted"
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert [i["value"] for group in thread["interrupts"].values() for i in group] == [question]
    state = await client.threads.get_state(tid)
    assert state["next"] == ["ask_approval"]
    assert [i["id"] for i in state["interrupts"]] == [pending["id"]]
    assert [i["value"] for i in state["tasks"][0]["interrupts"]] == [question]

    resumed = await collect(client.runs.stream(tid, "approval", command={"resume": "yes"}, stream_mode="values"))
    assert resumed[-1].data["status"] == "success" and resumed[-1].data["interrupts"] == []
    assert resumed[-2].event == "values" and resumed[-2].data == {"request": "refund", "decision": "yes"}
    assert (await client.threads.get(tid))["status"] == "idle"
    assert (await client.threads.get_state(tid))["next"] == []


async def test_new_input_on_an_interrupted_thread_is_409_and_keeps_the_interrupt(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input=REFUND)
    pending = (await client.threads.get_state(tid))["interrupts"]

    with pytest.raises(ConflictError) as refused:
        await client.runs.create(tid, "approval", input={"request": "another"})
    body = refused.value.response.json()
    assert body["code"] == "thread_interrupted" and body["interrupt_ids"] == [pending[0]["id"]]
    assert "resume" in body["detail"]
    assert (await client.threads.get_state(tid))["interrupts"] == pending
    assert len(await client.runs.list(tid)) == 1

    result = await client.runs.wait(tid, "approval", command={"resume": "no"})
    assert result == {"request": "refund", "decision": "no"}


async def test_resume_without_a_pending_interrupt_is_409(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    with pytest.raises(ConflictError) as fresh:
        await client.runs.create(tid, "approval", command={"resume": "yes"})
    assert fresh.value.response.json()["code"] == "nothing_to_resume"
    assert "interrupt" in fresh.value.response.json()["detail"]

    await client.runs.wait(tid, "approval", input=REFUND)
    await client.runs.wait(tid, "approval", command={"resume": "yes"})
    with pytest.raises(ConflictError) as answered:
        await client.runs.create(tid, "approval", command={"resume": "again"})
    assert answered.value.response.json()["code"] == "nothing_to_resume"
    assert (await client.threads.get_state(tid))["values"]["decision"] == "yes"


async def test_two_concurrent_resumes_do_not_both_run(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input=REFUND)

    async def resume(answer: str) -> str:
        try:
            run = await client.runs.create(tid, "approval", command={"resume": answer})
        except ConflictError:
            return "refused"
        return str((await finished(client, tid, run["run_id"]))["status"])

    outcomes = await asyncio.gather(resume("first"), resume("second"))
    assert sorted(outcomes).count("success") == 1, outcomes
    decision = (await client.threads.get_state(tid))["values"]["decision"]
    assert decision in ("first", "second")
    history = await client.threads.get_history(tid, limit=100)
    assert [h["values"].get("decision") for h in history if h["values"].get("decision")] == [decision]


async def test_wait_and_join_answer_the_pending_interrupt(server: LoomServer) -> None:
    """SDK callers test ``"__interrupt__" in result`` to know that a run waits on them, as with langgraph-api."""
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    result = await client.runs.wait(tid, "approval", input=REFUND)
    [pending] = (await client.threads.get_state(tid))["interrupts"]
    expected = {**REFUND, "__interrupt__": [{"id": pending["id"], "value": {"question": "approve refund?"}}]}
    assert result == expected
    [run] = await client.runs.list(tid)
    assert await client.runs.join(tid, run["run_id"]) == expected

    assert await client.runs.wait(tid, "approval", command={"resume": "yes"}) == {**REFUND, "decision": "yes"}


async def test_state_edited_while_waiting_then_resumed(server: LoomServer) -> None:
    """Studio's edit-then-continue: the edit replaces the waiting checkpoint, and the resume answers the node
    that asks again."""
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input=REFUND)
    await client.threads.update_state(tid, {"request": "a smaller refund"})
    assert (await client.threads.get_state(tid))["next"] == ["ask_approval"]

    result = await client.runs.wait(tid, "approval", command={"resume": "yes"})
    assert result == {"request": "a smaller refund", "decision": "yes"}
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_breakpoints_name_nodes_of_the_graph(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    with pytest.raises(UnprocessableEntityError) as refused:
        await client.runs.create(tid, "approval", input=REFUND, interrupt_before=["ask_aproval"])
    assert refused.value.response.json()["detail"].startswith("interrupt_before: no node 'ask_aproval'")
    assert await client.runs.list(tid) == []

    stopped = await client.runs.wait(tid, "approval", input=REFUND, interrupt_before=["ask_approval"])
    assert stopped == REFUND and (await client.threads.get_state(tid))["next"] == ["ask_approval"]
