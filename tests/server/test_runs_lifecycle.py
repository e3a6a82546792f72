"""Run lifecycle on a live server: runs end to end, cancel, multitask strategies, rejoining streams, disconnects,
limits."""

from __future__ import annotations

import json
from contextlib import aclosing
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, RateLimitError

from loom.processes import LoomServer
from tests.fixtures.servers import serving
from tests.server.live import (
    DONE,
    FIXTURE_INPUT,
    assert_error,
    close_gate,
    collect,
    finished,
    is_custom,
    open_gate,
    start_gated,
    step_one_count,
    until,
)

pytestmark = pytest.mark.live


async def new_thread(client: LangGraphClient) -> str:
    return str((await client.threads.create())["thread_id"])


async def run_ids_in_history(client: LangGraphClient, thread_id: str) -> list[str]:
    """The runs that wrote this thread's checkpoints, oldest first, each once."""
    history = await client.threads.get_history(thread_id, limit=100)
    order: list[str] = []
    for snapshot in reversed(history):
        run_id = snapshot["metadata"].get("run_id")
        if run_id and run_id not in order:
            order.append(run_id)
    return order


async def test_cancel_stops_the_run_and_leaves_the_thread_usable(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = await new_thread(client)
    run = await start_gated(client, tid)
    assert (await client.threads.get(tid))["status"] == "busy"

    await client.runs.cancel(tid, run["run_id"], wait=True)
    cancelled = await client.runs.get(tid, run["run_id"])
    assert cancelled["status"] == "cancelled"
    assert (await client.threads.get(tid))["status"] == "idle"
    state = await client.threads.get_state(tid)
    assert state["values"]["log"] == ["step_one"], "what was produced before the cancel is kept"
    with pytest.raises(ConflictError):
        await client.runs.cancel(tid, run["run_id"])

    open_gate(server, tid)
    again = await client.runs.wait(tid, "gated", input=FIXTURE_INPUT)
    assert again["log"][-2:] == DONE
    assert [r["status"] for r in await client.runs.list(tid)] == ["success", "cancelled"]


async def test_reject_strategy_answers_409_on_a_busy_thread(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = await new_thread(client)
    run = await start_gated(client, tid)
    with pytest.raises(ConflictError) as refused:
        await client.runs.create(tid, "gated", input=FIXTURE_INPUT, multitask_strategy="reject")
    assert refused.value.response.json()["code"] == "thread_busy"
    assert len(await client.runs.list(tid)) == 1
    with pytest.raises(ConflictError) as no_update:  # nor may the state change under a running graph
        await client.threads.update_state(tid, {"log": ["edited"]})
    assert no_update.value.response.json()["code"] == "thread_busy"

    open_gate(server, tid)
    assert (await finished(client, tid, run["run_id"]))["status"] == "success"


async def test_enqueue_runs_one_after_another_in_order(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = await new_thread(client)
    first = await start_gated(client, tid)
    second = await client.runs.create(tid, "gated", input=FIXTURE_INPUT, multitask_strategy="enqueue")
    third = await client.runs.create(tid, "gated", input=FIXTURE_INPUT)  # enqueue is the default
    assert [(await client.runs.get(tid, r["run_id"]))["status"] for r in (second, third)] == ["pending", "pending"]
    assert step_one_count(server, tid) == 1, "queued runs wait for the active one"

    open_gate(server, tid)
    runs = [first, second, third]
    assert [(await finished(client, tid, r["run_id"]))["status"] for r in runs] == ["success"] * 3
    assert await run_ids_in_history(client, tid) == [r["run_id"] for r in runs]
    assert (await client.threads.get_state(tid))["values"]["log"] == DONE * 3


async def test_interrupt_strategy_stops_the_active_run_and_starts_the_new_one(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = await new_thread(client)
    first = await start_gated(client, tid)
    second = await client.runs.create(tid, "gated", input=FIXTURE_INPUT, multitask_strategy="interrupt")
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"

    open_gate(server, tid)
    assert (await finished(client, tid, second["run_id"]))["status"] == "success"
    assert (await client.threads.get(tid))["status"] == "idle"
    assert (await client.threads.get_state(tid))["values"]["log"][-2:] == DONE


async def test_rollback_strategy_discards_the_active_runs_work(server: LoomServer) -> None:
    client = get_client(url=server.url)
    fresh = await new_thread(client)
    first = await start_gated(client, fresh)
    second = await client.runs.create(fresh, "gated", input=FIXTURE_INPUT, multitask_strategy="rollback")
    assert (await client.runs.get(fresh, first["run_id"]))["status"] in ("cancelled", "interrupted")
    open_gate(server, fresh)
    assert (await finished(client, fresh, second["run_id"]))["status"] == "success"
    assert (await client.threads.get_state(fresh))["values"]["log"] == DONE

    used = await new_thread(client)
    open_gate(server, used)
    await client.runs.wait(used, "gated", input=FIXTURE_INPUT)
    close_gate(server, used)
    first = await start_gated(client, used)
    second = await client.runs.create(used, "gated", input=FIXTURE_INPUT, multitask_strategy="rollback")
    open_gate(server, used)
    assert (await finished(client, used, second["run_id"]))["status"] == "success"
    assert (await client.threads.get_state(used))["values"]["log"] == DONE * 2, "the rolled-back step is gone"


async def test_join_stream_after_disconnect_resumes_exactly_after_the_last_event(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = await new_thread(client)
    run = await client.runs.create(tid, "gated", input=FIXTURE_INPUT, stream_mode=["custom", "updates", "values"])
    async with aclosing(client.runs.join_stream(tid, run["run_id"])) as parts:
        before = await until(parts, is_custom("step_one_done"))
    open_gate(server, tid)  # the run goes on while nobody listens
    assert (await finished(client, tid, run["run_id"]))["status"] == "success"

    rejoined = await collect(client.runs.join_stream(tid, run["run_id"], last_event_id=before[-1].id))
    everything = await collect(client.runs.join_stream(tid, run["run_id"]))
    assert before[0].event == "metadata"
    assert [(p.id, p.event, p.data) for p in before + rejoined] == [(p.id, p.event, p.data) for p in everything]
    assert rejoined[-1].event == "end" and rejoined[-1].data["status"] == "success"
    assert "values" in [p.event for p in rejoined], "events sent while disconnected are delivered"


async def test_on_disconnect_cancel_cancels_the_run(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = await new_thread(client)
    stream = client.runs.stream(tid, "gated", input=FIXTURE_INPUT, stream_mode="custom", on_disconnect="cancel")
    async with aclosing(stream) as parts:
        seen = await until(parts, is_custom("step_one_done"))
    run_id = seen[0].data["run_id"]
    assert (await finished(client, tid, run_id))["status"] == "cancelled"
    assert (await client.threads.get(tid))["status"] == "idle"
    assert step_one_count(server, tid) == 1


async def test_idempotency_key_returns_the_same_run(server: LoomServer) -> None:
    client = get_client(url=server.url)
    tid = await new_thread(client)
    open_gate(server, tid)
    headers = {"Idempotency-Key": f"create-{tid}"}
    first = await client.runs.create(tid, "gated", input=FIXTURE_INPUT, headers=headers)
    second = await client.runs.create(tid, "gated", input=FIXTURE_INPUT, headers=headers)
    assert first["run_id"] == second["run_id"]
    await finished(client, tid, first["run_id"])
    assert len(await client.runs.list(tid)) == 1


async def test_runs_are_listed_by_status_and_an_unknown_status_is_refused(server: LoomServer) -> None:
    """``GET /threads/{id}/runs?status=`` takes a run status; a typo is a 422 naming the field, not an empty list."""
    client = get_client(url=server.url)
    tid = await new_thread(client)
    open_gate(server, tid)
    run = await client.runs.create(tid, "gated", input=FIXTURE_INPUT)
    await finished(client, tid, run["run_id"])
    async with httpx.AsyncClient(base_url=server.url) as http:
        done = (await http.get(f"/threads/{tid}/runs", params={"status": "success"})).json()
        assert [listed["run_id"] for listed in done] == [run["run_id"]]
        assert (await http.get(f"/threads/{tid}/runs", params={"status": "pending"})).json() == []
        refused = assert_error(await http.get(f"/threads/{tid}/runs", params={"status": "succes"}), 422)
    assert "status" in refused["detail"]


async def refused_as_full(client: LangGraphClient, thread_id: str, code: str) -> None:
    """A run on ``thread_id`` is a 429 ``code`` with ``Retry-After``, and nothing of it is stored."""
    with pytest.raises(RateLimitError) as full:
        await client.runs.create(thread_id, "gated", input=FIXTURE_INPUT)
    assert int(full.value.response.headers["Retry-After"]) > 0
    assert full.value.response.json()["code"] == code
    assert await client.runs.list(thread_id) == []


async def test_full_queue_answers_429_and_drops_nothing_accepted(tmp_path: Path) -> None:
    with serving(tmp_path / "queue", LOOM_SERVER_CONCURRENCY="1", LOOM_SERVER_QUEUE_SIZE="1") as server:
        client = get_client(url=server.url)
        running, queued, refused = [await new_thread(client) for _ in range(3)]
        first = await start_gated(client, running)  # the only worker is busy with it
        second = await client.runs.create(queued, "gated", input=FIXTURE_INPUT)  # fills the queue
        await refused_as_full(client, refused, "queue_full")

        open_gate(server, running)
        open_gate(server, queued)
        assert (await finished(client, running, first["run_id"]))["status"] == "success"
        assert (await finished(client, queued, second["run_id"]))["status"] == "success"
        assert (await client.threads.get_state(queued))["values"]["log"] == DONE


async def test_one_user_cannot_fill_the_queue_for_everyone(tmp_path: Path) -> None:
    """``LOOM_USER_MAX_UNFINISHED_RUNS``: alice's second run is a 429 while bob's first is accepted and runs;
    a run that interrupts her running one replaces it, so it is not refused."""
    keys = json.dumps({"alice": "ka", "bob": "kb"})
    with serving(tmp_path / "share", LOOM_API_KEYS=keys, LOOM_USER_MAX_UNFINISHED_RUNS="1") as server:
        alice = get_client(url=server.url, api_key="ka")
        bob = get_client(url=server.url, api_key="kb")
        busy, refused, bobs = await new_thread(alice), await new_thread(alice), await new_thread(bob)
        first = await start_gated(alice, busy)
        await refused_as_full(alice, refused, "user_queue_full")

        open_gate(server, bobs)
        theirs = await bob.runs.create(bobs, "gated", input=FIXTURE_INPUT)
        assert (await finished(bob, bobs, theirs["run_id"]))["status"] == "success"
        # replacing her running run is not one more
        replacement = await alice.runs.create(busy, "gated", input=FIXTURE_INPUT, multitask_strategy="interrupt")
        open_gate(server, busy)
        assert (await finished(alice, busy, replacement["run_id"]))["status"] == "success"
        assert (await alice.runs.get(busy, first["run_id"]))["status"] == "interrupted"
        open_gate(server, refused)
        again = await alice.runs.create(refused, "gated", input=FIXTURE_INPUT)  # her share is free again
        assert (await finished(alice, refused, again["run_id"]))["status"] == "success"


async def test_run_timeout_ends_the_run_and_frees_the_thread(tmp_path: Path) -> None:
    with serving(tmp_path / "timeout", LOOM_RUN_TIMEOUT_S="2") as server:
        client = get_client(url=server.url)
        tid = await new_thread(client)
        parts = await collect(client.runs.stream(tid, "gated", input=FIXTURE_INPUT, stream_mode="custom"))
        assert [p.event for p in parts] == ["metadata", "custom", "error", "end"]
        assert parts[-2].data["error"] == "TimeoutError"
        assert parts[-1].data["status"] == "timeout"
        run = await client.runs.get(tid, parts[0].data["run_id"])
        assert run["status"] == "timeout" and run["error"]["error"] == "TimeoutError"
        assert (await client.threads.get(tid))["status"] != "busy"

        open_gate(server, tid)
        again = await client.runs.wait(tid, "gated", input=FIXTURE_INPUT)
        assert again["log"][-2:] == DONE


async def test_updates_carry_the_ids_the_state_gives_tool_messages(server: LoomServer) -> None:
    """LangGraph leaves ``add_messages``' ids out of ``updates`` parts when it streams subgraphs: Loom asks for
    them only when the client does (``stream_subgraphs``), as langgraph-api, so UIs can merge messages by id."""
    client = get_client(url=server.url)
    thread_id = (await client.threads.create())["thread_id"]
    parts = await collect(client.runs.stream(thread_id, "tool_loop", input={"messages": []}, stream_mode="updates"))
    [tool_update] = [p.data["tools"] for p in parts if p.event == "updates" and "tools" in p.data]
    [answer] = tool_update["messages"]
    [stored] = [m for m in (await client.threads.get_state(thread_id))["values"]["messages"] if m["type"] == "tool"]
    assert answer["content"] == "42" and answer["id"] == stored["id"] and stored["id"]


async def test_join_stream_sends_the_modes_asked_for(server: LoomServer) -> None:
    client = get_client(url=server.url)
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "tool_loop", input={"messages": []}, stream_mode=["values", "updates"])
    everything = await collect(client.runs.join_stream(thread_id, run["run_id"]))
    assert {"values", "updates"} <= {p.event for p in everything}

    updates = await collect(client.runs.join_stream(thread_id, run["run_id"], stream_mode="updates"))
    assert [p.event for p in updates] == ["metadata", *(["updates"] * 2), "end"]
    assert [p.data for p in updates] == [p.data for p in everything if p.event in ("metadata", "updates", "end")]
    async with httpx.AsyncClient(base_url=server.url) as http:
        path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
        as_json_array = await http.get(path, params={"stream_mode": '["values"]'})
        assert [line for line in as_json_array.text.splitlines() if line.startswith("event:")] == [
            "event: metadata",
            *(["event: values"] * 3),
            "event: end",
        ]
        assert_error(await http.get(path, params={"stream_mode": "everything"}), 422, "invalid_request")


async def test_an_unknown_checkpoint_is_404_behind_a_running_run_too(server: LoomServer) -> None:
    """Queued, it would have started from an empty state and replaced the thread's history."""
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    running = await start_gated(client, tid)
    made_up = "1f0c0000-0000-6000-8000-000000000000"
    with pytest.raises(NotFoundError) as refused:
        await client.runs.create(tid, "gated", input=FIXTURE_INPUT, checkpoint_id=made_up)
    assert refused.value.response.json()["code"] == "checkpoint_not_found"
    assert [run["run_id"] for run in await client.runs.list(tid)] == [running["run_id"]]
    open_gate(server, tid)
    await client.runs.join(tid, running["run_id"])


# end to end -------------------------------------------------------------------------------------
async def test_gated_run_and_approval(server: LoomServer) -> None:
    client = get_client(url=server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "gated", input={"log": []})
    (server.data_dir / "gates").mkdir(parents=True, exist_ok=True)
    Path(server.data_dir / "gates" / f"{tid}.open").write_text("")
    result = await client.runs.join(tid, run["run_id"])
    assert result["log"] == ["step_one", "gate_passed"]
    t2 = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            t2["thread_id"], "approval", input={"request": "refund"}, stream_mode="updates"
        )
    ]
    assert parts[-1].event == "end" and parts[-1].data["status"] == "interrupted"
    final = await client.runs.wait(t2["thread_id"], "approval", command={"resume": "yes"})
    assert final["decision"] == "yes"


async def test_chart_artifact_is_served_to_its_owner(live_server: LoomServer) -> None:
    client = get_client(url=live_server.url)
    thread = await client.threads.create()
    text = "Create a chart from this data: Q1 120, Q2 150, Q3 90"
    state = await client.runs.wait(
        thread["thread_id"], "assistant", input={"messages": [{"role": "user", "content": text}]}
    )
    (artifact,) = state["artifacts"]
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        image = await http.get(artifact["url"])
        traversal = await http.get(f"/threads/{thread['thread_id']}/artifacts/..%2F..%2Floom.sqlite")
        elsewhere = await http.get(artifact["url"].replace(thread["thread_id"], "someone-else"))
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert traversal.status_code == 404 and elsewhere.status_code == 404


async def test_resolving_a_support_request_updates_the_table_and_the_thread_state(live_server: LoomServer) -> None:
    client = get_client(url=live_server.url)
    thread_id = (await client.threads.create())["thread_id"]
    text = "My payment failed and I can't access my account"
    await client.runs.wait(thread_id, "support", input={"messages": [{"role": "user", "content": text}]})
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        resolved = await http.post(f"/support/requests/{thread_id}/resolve", json={"summary": "Card replaced."})
        listed = (await http.get("/support/requests", params={"status": "resolved"})).json()
    assert resolved.status_code == 200 and [r["request_id"] for r in listed["requests"]] == [thread_id]
    state = await client.threads.get_state(thread_id)
    request = state["values"]["request"]  # type: ignore[call-overload]
    assert (request["status"], request["resolution_summary"], request["category"]) == (
        "resolved",
        "Card replaced.",
        "billing",
    )
    assert state["next"] == []
