from __future__ import annotations

from pathlib import Path

import httpx
from langgraph_sdk import get_client

from loom.processes import LoomServer


async def test_gated_run_and_approval(test_server: LoomServer) -> None:
    client = get_client(url=test_server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "gated", input={"log": []})
    (test_server.data_dir / "gates").mkdir(parents=True, exist_ok=True)
    Path(test_server.data_dir / "gates" / f"{tid}.open").write_text("")
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
