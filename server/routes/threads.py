"""Threads: create/get/search/patch/delete, state at any checkpoint, state updates, history."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot
from sqlalchemy import asc, desc, select

from loom.threads import is_key, public_thread_id, thread_key
from server.auth import Caller, CurrentCaller, matches
from server.db import ThreadRow, new_id, now
from server.deps import Loom, Services, find_thread, owned_thread, visible_thread
from server.errors import ApiError, not_found
from server.schemas import HistoryQuery, StateUpdate, ThreadCreate, ThreadPatch, ThreadSearch
from services.paths import remove_thread_artifacts

router = APIRouter(prefix="/threads", tags=["threads"])


@router.post("")
async def create(body: ThreadCreate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    """Ids are per owner (``loom.threads``): an id another user holds is free for this caller."""
    user = caller.identity
    value = {"thread_id": body.thread_id, "metadata": dict(body.metadata), "if_exists": body.if_exists}
    await caller.authorize("threads", "create", value)  # a project's handler may stamp metadata on it
    async with loom.sessions.begin() as session:
        if body.thread_id and (existing := await find_thread(session, body.thread_id, user)) is not None:
            if body.if_exists == "raise":
                raise ApiError(409, "thread_exists", f"thread {body.thread_id!r} already exists")
            return await thread_view(loom, existing)
        if body.graph_id is not None and body.graph_id not in loom.graphs:
            raise not_found("graph", body.graph_id)
        thread_id = thread_key(user, body.thread_id or new_id())
        thread = ThreadRow(thread_id=thread_id, owner=user, graph_id=body.graph_id, metadata_=value["metadata"])
        session.add(thread)
    return await thread_view(loom, thread)


@router.post("/search")
async def search(body: ThreadSearch, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    user = caller.identity
    filters = await caller.authorize("threads", "search", body.model_dump())
    query = select(ThreadRow).where(ThreadRow.owner == user)
    if body.status:
        query = query.where(ThreadRow.status == body.status)
    if body.ids:
        keys = [thread_key(user, i) for i in body.ids] + [i for i in body.ids if not is_key(i)]
        query = query.where(ThreadRow.thread_id.in_(keys))
    order = desc if body.sort_order == "desc" else asc
    query = query.order_by(order(getattr(ThreadRow, body.sort_by)))
    async with loom.sessions() as session:
        rows = (await session.scalars(query)).all()
    if body.metadata or filters:  # JSON filtering in Python keeps SQLite and PostgreSQL identical
        wanted = body.metadata or {}
        rows = [
            r for r in rows if all(r.metadata_.get(k) == v for k, v in wanted.items()) and matches(r.metadata_, filters)
        ]
    page = rows[body.offset : body.offset + body.limit]
    return [await thread_view(loom, row) for row in page]


@router.get("/{thread_id}")
async def get(thread_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    async with loom.sessions() as session:
        return await thread_view(loom, await visible_thread(session, thread_id, caller, "read"))


@router.patch("/{thread_id}")
async def patch(thread_id: str, body: ThreadPatch, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    async with loom.sessions.begin() as session:
        thread = await visible_thread(session, thread_id, caller, "update")
        thread.metadata_ = {**thread.metadata_, **body.metadata}
    return await thread_view(loom, thread)


@router.delete("/{thread_id}", status_code=204)
async def delete(thread_id: str, loom: Loom, caller: CurrentCaller) -> Response:
    async with loom.sessions() as session:
        key = (await visible_thread(session, thread_id, caller, "delete")).thread_id
    await loom.manager.cancel_thread(key)
    async with loom.sessions.begin() as session:
        await session.delete(await owned_thread(session, thread_id, caller.identity))
    await loom.checkpointer.adelete_thread(key)
    await asyncio.to_thread(remove_thread_artifacts, loom.settings, caller.identity, thread_id)
    return Response(status_code=204)


@router.get("/{thread_id}/state")
async def get_state(thread_id: str, loom: Loom, caller: CurrentCaller, subgraphs: bool = False) -> dict[str, Any]:
    return await _state(loom, thread_id, caller, None, subgraphs)


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(thread_id: str, checkpoint_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    return await _state(loom, thread_id, caller, checkpoint_id, False)


@router.post("/{thread_id}/state")
async def update_state(thread_id: str, body: StateUpdate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    user = caller.identity
    async with loom.sessions() as session:
        key = (await visible_thread(session, thread_id, caller, "update")).thread_id
    async with loom.sessions.begin() as session, loom.manager.idle_thread(thread_key(user, thread_id), key):
        thread = await owned_thread(session, thread_id, user)
        graph = _graph_of(loom, thread)
        config = _config(key, body.checkpoint_id or (body.checkpoint.checkpoint_id if body.checkpoint else None))
        if config["configurable"].get("checkpoint_id"):
            await _snapshot_or_404(graph, config)
        try:
            new_config = await graph.aupdate_state(config, body.values, as_node=body.as_node)
        except (ValueError, KeyError, InvalidUpdateError) as exc:  # unknown as_node, values of the wrong shape
            raise ApiError(422, "invalid_state_update", str(exc)) from exc
        thread.updated_at = now()
    return {"checkpoint": {**new_config["configurable"], "thread_id": thread_id}}


@router.post("/{thread_id}/history")
async def history(thread_id: str, body: HistoryQuery, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    async with loom.sessions() as session:
        thread = await visible_thread(session, thread_id, caller, "read")
    if thread.graph_id is None:
        return []
    before_id = body.before_id()
    before_config = _config(thread.thread_id, before_id) if before_id else None
    graph = _graph_of(loom, thread)
    config = _config(thread.thread_id)
    states = graph.aget_state_history(config, filter=body.metadata, before=before_config, limit=body.limit)
    try:
        return [snapshot_view(s) async for s in states]
    except ValueError as exc:  # the checkpointer refuses a metadata filter key it cannot query
        raise ApiError(422, "invalid_filter", f"metadata: {exc}") from exc


@router.get("/{thread_id}/history")
async def history_get(
    thread_id: str, loom: Loom, caller: CurrentCaller, limit: Annotated[int, Query(ge=1, le=1000)] = 10
) -> list[dict[str, Any]]:
    return await history(thread_id, HistoryQuery(limit=limit), loom, caller)


async def _state(
    loom: Services, thread_id: str, caller: Caller, checkpoint_id: str | None, subgraphs: bool
) -> dict[str, Any]:
    async with loom.sessions() as session:
        thread = await visible_thread(session, thread_id, caller, "read")
    if thread.graph_id is None:
        return snapshot_view(None, thread_id)
    snapshot = await _snapshot_or_404(_graph_of(loom, thread), _config(thread.thread_id, checkpoint_id), subgraphs)
    return snapshot_view(snapshot, thread_id)


async def _snapshot_or_404(graph: Any, config: RunnableConfig, subgraphs: bool = False) -> StateSnapshot:
    snapshot: StateSnapshot = await graph.aget_state(config, subgraphs=subgraphs)
    checkpoint_id = config["configurable"].get("checkpoint_id")
    if checkpoint_id and snapshot.created_at is None:
        raise not_found("checkpoint", checkpoint_id)
    return snapshot


def _graph_of(loom: Services, thread: ThreadRow) -> Any:
    if thread.graph_id is None:
        raise ApiError(409, "thread_has_no_graph", "this thread has no runs yet, so it has no state to update")
    return loom.graphs[thread.graph_id]


def _config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def snapshot_view(snapshot: StateSnapshot | None, thread_id: str | None = None) -> dict[str, Any]:
    if snapshot is None:
        return {"values": {}, "next": [], "tasks": [], "checkpoint": None, "metadata": {}, "created_at": None,
                "parent_checkpoint": None, "interrupts": []}  # fmt: skip
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path),
                "error": repr(task.error) if task.error else None,
                "interrupts": [{"id": i.id, "value": i.value} for i in task.interrupts],
                "checkpoint": None,
                "state": snapshot_view(task.state) if isinstance(task.state, StateSnapshot) else None,
                "result": task.result,
            }
            for task in snapshot.tasks
        ],
        "checkpoint": _checkpoint(snapshot.config),
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "metadata": snapshot.metadata or {},
        "created_at": snapshot.created_at,
        "interrupts": [{"id": i.id, "value": i.value} for i in snapshot.interrupts],
    }


def _checkpoint(config: RunnableConfig | None) -> dict[str, Any] | None:
    if not config:
        return None
    configurable = config.get("configurable") or {}
    keys = ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")
    checkpoint = {key: configurable.get(key) for key in keys if key in configurable or key == "checkpoint_ns"}
    if isinstance(key := checkpoint.get("thread_id"), str):
        checkpoint["thread_id"] = public_thread_id(key)
    return checkpoint


async def thread_view(loom: Services, thread: ThreadRow) -> dict[str, Any]:
    values: Any = {}
    interrupts: dict[str, Any] = {}
    if thread.graph_id is not None:
        snapshot = await loom.graphs[thread.graph_id].aget_state(_config(thread.thread_id))
        values = snapshot.values
        for task in snapshot.tasks:
            if task.interrupts:
                interrupts[task.id] = [{"id": i.id, "value": i.value} for i in task.interrupts]
    return {
        "thread_id": public_thread_id(thread.thread_id),
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
        "metadata": thread.metadata_,
        "status": thread.status,
        "values": values,
        "interrupts": interrupts,
    }
