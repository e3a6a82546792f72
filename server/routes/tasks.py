"""Seed 004's task API as a thin layer over threads and runs of the plan-execute graph.

``POST /tasks`` stores the task as a thread; ``POST /tasks/{id}/execute`` starts a run and
streams NDJSON (``step_started``, ``partial_output``, ``step_completed``, ``step_failed``,
``task_completed``, ``task_failed``) mapped from the run's own events; the run itself is queued,
retried and recovered by the same run manager as every other run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from loom.threads import public_thread_id, thread_key
from server.auth import CurrentCaller, CurrentUser
from server.db import ThreadRow, new_id
from server.deps import Loom, Services, owned_thread
from server.engine import admission, records
from server.errors import ApiError, not_found
from server.schemas import RunCreate, TaskCreate

router = APIRouter(prefix="/tasks", tags=["tasks"])
STEP_EVENTS = {"plan_created", "step_started", "step_completed", "step_failed", "replanned"}
STATUS = {"pending": "running", "running": "running", "success": "completed", "interrupted": "waiting_for_approval"}


@router.post("", status_code=201)
async def create(body: TaskCreate, loom: Loom, user: CurrentUser) -> dict[str, Any]:
    """Store a task (a thread of ``graph_id``) to execute later; 201 with its ``task_id`` and ``pending``, 404 for
    a graph the server does not serve."""
    if body.graph_id not in loom.graphs:
        raise not_found("assistant", body.graph_id)
    thread = ThreadRow(
        thread_id=thread_key(user, new_id()),
        owner=user,
        graph_id=body.graph_id,
        metadata_={"kind": "task", "task_description": body.task_description},
    )
    await records.store_thread(loom.sessions, thread)
    return {"task_id": public_thread_id(thread.thread_id), "status": "pending", "created_at": thread.created_at}


@router.post("/{task_id}/execute")
async def execute(task_id: str, loom: Loom, caller: CurrentCaller) -> StreamingResponse:
    """Run the task once and stream its progress as NDJSON (``step_started``, ``partial_output``,
    ``step_completed``, ``step_failed``, ``task_completed``, ``task_failed``, ``task_waiting``).

    Answers 200 with the stream; 404 for an unknown task, 409 if it has been executed already, 429 when the run
    queue is full."""
    async with loom.sessions() as session:
        thread = await _task(session, task_id, caller.identity)
    if await records.latest_run(loom.sessions, thread.thread_id) is not None:
        raise ApiError(409, "task_already_executed", "this task has been executed; create a new task")
    body = RunCreate(
        assistant_id=str(thread.graph_id),
        input={"messages": [{"role": "user", "content": thread.metadata_["task_description"]}]},
        stream_mode=["custom", "messages-tuple"],
        multitask_strategy="reject",
    )
    prepared = await loom.prepare(caller.identity, body)
    run = await admission.admit(loom.manager, caller, task_id, prepared, None)
    return StreamingResponse(_task_events(loom, run.run_id), media_type="application/x-ndjson")


@router.get("/{task_id}/status")
async def status(task_id: str, loom: Loom, user: CurrentUser) -> dict[str, Any]:
    """The task's status (``pending``, ``running``, ``waiting_for_approval``, ``completed``, ``failed``), its run,
    plan, step results and final output; 200, or 404 for an unknown task."""
    async with loom.sessions() as session:
        thread = await _task(session, task_id, user)
    run = await records.latest_run(loom.sessions, thread.thread_id)
    values: dict[str, Any] = {}
    if run is not None:
        config: RunnableConfig = {"configurable": {"thread_id": thread.thread_id}}
        values = (await loom.graphs[str(thread.graph_id)].aget_state(config)).values
    return {
        "task_id": task_id,
        "task_description": thread.metadata_.get("task_description"),
        "status": "pending" if run is None else STATUS.get(run.status, "failed"),
        "run": None if run is None else {"run_id": run.run_id, "status": run.status, "attempt": run.attempt},
        "plan": values.get("plan", []),
        "results": values.get("results", {}),
        "final_output": _final_output(values),
        "report": values.get("report"),
    }


async def _task(session: Any, task_id: str, user: str) -> ThreadRow:
    thread = await owned_thread(session, task_id, user)
    if thread.metadata_.get("kind") != "task":
        raise ApiError(404, "task_not_found", f"task {task_id!r} not found")
    return thread


async def _task_events(loom: Services, run_id: str) -> AsyncIterator[str]:
    """Translate run events to seed 004's event types, one JSON object per line."""
    async for event in loom.manager.events(run_id):
        data = json.loads(event.data)
        for event_type, payload in _translate(event.name, data):
            if event_type == "task_completed":
                payload = await _completion(loom, run_id)
                event_type = "task_failed" if payload["failed"] else event_type
            yield json.dumps({"event_type": event_type, "data": payload}, default=str) + "\n"


def _translate(name: str, data: Any) -> list[tuple[str, Any]]:
    if name == "custom" and isinstance(data, dict) and data.get("event") in STEP_EVENTS:
        return [(data["event"], {k: v for k, v in data.items() if k != "event"})]
    if name == "messages":
        chunk, metadata = data
        if (
            chunk.get("type") in ("AIMessageChunk", "ai")  # "ai": a whole message, when results are quoted
            and chunk.get("content")
            and metadata.get("langgraph_node") == "synthesize"
        ):
            return [("partial_output", {"content": chunk["content"]})]
    if name == "error":
        return [("task_failed", {"error": data})]
    if name == "end":
        if data["status"] == "success":
            return [("task_completed", {})]
        if data["status"] == "interrupted":
            return [("task_waiting", {"interrupts": data["interrupts"]})]
        return [("task_failed", {"status": data["status"]})]
    return []


async def _completion(loom: Services, run_id: str) -> dict[str, Any]:
    output = await records.stored_output(loom.sessions, run_id)
    values = json.loads(output) if output else {}  # stored by whichever worker ran it
    report = values.get("report")
    return {"final_output": _final_output(values), "failed": bool(report), "report": report}


def _final_output(values: dict[str, Any]) -> str | None:
    """The last message's text if it is the model's: a message from the thread state, or as stored (a JSON object)."""
    messages = values.get("messages") or []
    last = messages[-1] if messages else None
    if isinstance(last, BaseMessage):
        return last.text if last.type == "ai" else None
    if not isinstance(last, dict) or last.get("type") != "ai":
        return None
    return AIMessage(content=last.get("content") or "").text
