"""Seed 004's task API over the plan-execute graph, through a live server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from loom.processes import LoomServer
from tests.fixtures.servers import serving

REQUEST = "Find round sunglasses that are in stock and tell me their prices"


async def test_task_plans_streams_steps_and_completes(live_server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        created = await http.post("/tasks", json={"task_description": REQUEST})
        assert created.status_code == 201 and created.json()["status"] == "pending"
        task_id = created.json()["task_id"]
        async with http.stream("POST", f"/tasks/{task_id}/execute") as response:
            assert response.headers["content-type"].startswith("application/x-ndjson")
            events = [json.loads(line) async for line in response.aiter_lines() if line]
        status = (await http.get(f"/tasks/{task_id}/status")).json()
        again = await http.post(f"/tasks/{task_id}/execute")
        missing = await http.get("/tasks/no-such-task/status")
    kinds = [e["event_type"] for e in events]
    assert kinds[0] == "plan_created" and kinds[-1] == "task_completed"
    assert kinds.count("step_started") == kinds.count("step_completed") == 3
    assert "partial_output" in kinds and kinds.index("partial_output") > kinds.index("step_completed")
    partial = "".join(e["data"]["content"] for e in events if e["event_type"] == "partial_output")
    assert events[-1]["data"]["final_output"] == partial, "the final answer, read from the run's stored output"
    prices = [e["data"]["output"] for e in events if e["event_type"] == "step_completed"][-1]
    assert "89.0" in prices and "219.0" in prices
    assert status["status"] == "completed" and len(status["plan"]) == 3
    assert status["plan"][1]["depends_on"] == ["step_1"]
    assert again.status_code == 409 and again.json()["code"] == "task_already_executed"
    assert missing.status_code == 404 and missing.json()["code"] == "thread_not_found"


async def test_bad_task_input_is_rejected_with_the_field(live_server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        empty = await http.post("/tasks", json={"task_description": ""})
        extra = await http.post("/tasks", json={"task_description": "x", "priority": 1})
        broken = await http.post("/tasks", content=b"{bad", headers={"content-type": "application/json"})
        unknown_graph = await http.post("/tasks", json={"task_description": "x", "graph_id": "nope"})
    assert empty.status_code == 422 and "task_description" in empty.json()["detail"]
    assert extra.status_code == 422 and "priority" in extra.json()["detail"]
    assert broken.status_code == 400 and broken.json()["code"] == "malformed_json"
    assert unknown_graph.status_code == 404


async def test_on_local_models_partial_output_quotes_the_steps_results(tmp_path: Path) -> None:
    """Seed 004's stream on the embedded model: the answer is the steps' rows, not the 135M model's summary."""
    with serving(tmp_path / "server", fixtures=False, LOOM_MODEL="local:smollm2") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            task_id = (await http.post("/tasks", json={"task_description": REQUEST})).json()["task_id"]
            async with http.stream("POST", f"/tasks/{task_id}/execute") as response:
                events = [json.loads(line) async for line in response.aiter_lines() if line]
    partial = "".join(e["data"]["content"] for e in events if e["event_type"] == "partial_output")
    assert "Lennon Round Classic · 89.0" in partial and "Round Titanium Polarised · 219.0" in partial
    assert events[-1]["event_type"] == "task_completed" and events[-1]["data"]["final_output"] == partial
