"""Threads: create/get/search/patch/delete, state at any checkpoint, state updates, history."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot
from langgraph_sdk.runtime import AccessContext
from pydantic import StrictBool
from sqlalchemy import asc, desc, select
from sqlalchemy.orm import Session

from loom.threads import is_key, public_thread_id, thread_key
from server.auth import Caller, CurrentCaller, metadata_match
from server.db import RunRow, ThreadRow, insert_row, new_id, now, transaction
from server.deps import Loom, Services, owned_thread, stored_thread, visible_thread
from server.engine.wire import checkpoint_of, interrupt_views
from server.errors import ApiError, not_found
from server.schemas import (
    CheckpointRef,
    HistoryQuery,
    StateUpdate,
    Strict,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
)
from services.paths import remove_thread_artifacts

router = APIRouter(prefix="/threads", tags=["threads"])


class StateAtCheckpoint(Strict):
    checkpoint: CheckpointRef
    subgraphs: StrictBool = False


@router.post("")
async def create(body: ThreadCreate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    """Ids are per owner (``loom.threads``): an id another user holds is free for this caller."""
    user = caller.identity
    value: dict[str, Any] = {"thread_id": body.thread_id, "metadata": dict(body.metadata), "if_exists": body.if_exists}
    await caller.authorize("threads", "create", value)  # a project's handler may stamp metadata on it
    if body.graph_id is not None:
        loom.graphs.served(body.graph_id)

    def create_or_find(session: Session) -> tuple[ThreadRow, bool]:
        if body.thread_id and (existing := stored_thread(session, body.thread_id, user)) is not None:
            if body.if_exists == "raise":
                raise ApiError(409, "thread_exists", f"thread {body.thread_id!r} already exists")
            return existing, False
        thread_id, created = thread_key(user, body.thread_id or new_id()), now()
        thread = ThreadRow(thread_id=thread_id, owner=user, graph_id=body.graph_id, status="idle",
                           metadata_=value["metadata"], created_at=created, updated_at=created)  # fmt: skip
        insert_row(session, thread)
        return thread, True

    thread, new = await transaction(loom.sessions, create_or_find)
    return await thread_view(loom, thread, new=new)


@router.post("/search")
async def search(body: ThreadSearch, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    filters = await caller.authorize("threads", "search", body.model_dump())
    order = desc if body.sort_order == "desc" else asc
    column = ThreadRow.updated_at if body.sort_by == "state_updated_at" else getattr(ThreadRow, body.sort_by)
    query = _filtered(caller.identity, body).order_by(order(column), order(ThreadRow.thread_id))
    async with loom.sessions() as session:
        rows = metadata_match(_listed((await session.scalars(query)).all(), body), body.metadata, filters)
    window = slice(body.offset, body.offset + body.limit)
    if body.values:  # values live in checkpoints: every candidate's state is read (only when asked)
        views = [await thread_view(loom, row) for row in rows]
        page = [v for v in views if all(_value(v["values"], k) == want for k, want in body.values.items())][window]
    else:
        page = [await thread_view(loom, row) for row in rows[window]]
    return [_shaped(view, body) for view in page]


def _shaped(view: dict[str, Any], body: ThreadSearch) -> dict[str, Any]:
    """``select`` keeps the named fields; ``extract`` adds ``extracted`` with the values its paths point at."""
    shaped: dict[str, Any] = {k: v for k, v in view.items() if not body.select or k in body.select}
    if body.extract:
        shaped["extracted"] = {alias: _at(view, path) for alias, path in body.extract.items()}
    return shaped


PATH_STEP = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def _at(value: Any, path: str) -> Any:
    """What a path points at, or None; private attributes are never read."""
    for name, index in PATH_STEP.findall(path):
        if index:
            position = int(index)
            fits = isinstance(value, list) and -len(value) <= position < len(value)
            value = value[position] if fits else None
        elif isinstance(value, dict):
            value = value.get(name)
        else:
            value = None if name.startswith("_") else getattr(value, name, None)
        if value is None:
            return None
    return value


def _value(values: Any, key: str) -> Any:
    return values.get(key) if isinstance(values, dict) else None


@router.post("/count")
async def count(body: ThreadCount, loom: Loom, caller: CurrentCaller) -> int:
    filters = await caller.authorize("threads", "search", body.model_dump())
    async with loom.sessions() as session:
        rows = (await session.scalars(_filtered(caller.identity, body))).all()
    return len(metadata_match(_listed(rows, body), body.metadata, filters))


def _listed(rows: Sequence[ThreadRow], body: ThreadCount) -> Sequence[ThreadRow]:
    """The threads a search shows: not a stateless run's own (``ephemeral``), which langgraph-api deletes with its
    run (Loom keeps the row, under which the run's outcome is stored, without checkpoints), unless asked for by
    ``metadata.ephemeral``."""
    if "ephemeral" in (body.metadata or {}):
        return rows
    return [row for row in rows if not row.metadata_.get("ephemeral")]


def _filtered(user: str, body: ThreadCount) -> Any:
    query = select(ThreadRow).where(ThreadRow.owner == user)
    if body.status:
        query = query.where(ThreadRow.status == body.status)
    if isinstance(body, ThreadSearch) and body.ids:  # the caller's keys, and bare ids of threads made before keys
        keys = [thread_key(user, i) for i in body.ids] + [i for i in body.ids if not is_key(i)]
        query = query.where(ThreadRow.thread_id.in_(keys))
    return query


@router.get("/{thread_id}")
async def get(thread_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    async with loom.sessions() as session:
        thread = await visible_thread(session, thread_id, caller, "read")
    return await thread_view(loom, thread)


@router.patch("/{thread_id}")
async def patch(thread_id: str, body: ThreadPatch, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    async with loom.sessions.begin() as session:
        thread = await visible_thread(session, thread_id, caller, "update")
        thread.metadata_ = {**thread.metadata_, **body.metadata}
    return await thread_view(loom, thread)


@router.post("/{thread_id}/copy")
async def copy(thread_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    """A new thread of the caller's with the same metadata and every checkpoint, so it continues from there."""
    async with loom.sessions() as session:
        source = await visible_thread(session, thread_id, caller, "read")
    value = {"thread_id": None, "metadata": dict(source.metadata_)}
    await caller.authorize("threads", "create", value)
    status = "interrupted" if source.status == "interrupted" else "idle"
    async with loom.sessions.begin() as session:
        thread = ThreadRow(thread_id=thread_key(caller.identity, new_id()), owner=caller.identity,
                           graph_id=source.graph_id, metadata_=value["metadata"], status=status)  # fmt: skip
        session.add(thread)
    await _copy_checkpoints(loom.checkpointer, source.thread_id, thread.thread_id)
    return await thread_view(loom, thread)


async def _copy_checkpoints(saver: BaseCheckpointSaver[str], source: str, target: str) -> None:
    """Oldest first, under the same checkpoint ids, pending writes included: a delta channel needs the whole chain."""
    found = [item async for item in saver.alist({"configurable": {"thread_id": source}})]
    for item in reversed(found):
        parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        configurable = {"thread_id": target, "checkpoint_ns": item.config["configurable"].get("checkpoint_ns", "")}
        if parent:
            configurable["checkpoint_id"] = parent
        metadata = {**item.metadata, **({"thread_id": target} if "thread_id" in item.metadata else {})}
        versions = item.checkpoint["channel_versions"]
        saved = await saver.aput({"configurable": configurable}, item.checkpoint, metadata, versions)  # type: ignore[arg-type]
        writes: dict[str, list[tuple[str, Any]]] = {}
        for task_id, channel, value in item.pending_writes or []:
            writes.setdefault(task_id, []).append((channel, value))
        for task_id, task_writes in writes.items():
            await saver.aput_writes(saved, task_writes, task_id)


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
async def get_state_at(
    thread_id: str, checkpoint_id: str, loom: Loom, caller: CurrentCaller, subgraphs: bool = False
) -> dict[str, Any]:
    return await _state(loom, thread_id, caller, checkpoint_id, subgraphs)


@router.post("/{thread_id}/state/checkpoint")
async def get_state_at_checkpoint(
    thread_id: str, body: StateAtCheckpoint, loom: Loom, caller: CurrentCaller
) -> dict[str, Any]:
    """What the SDK's ``get_state(checkpoint=…)`` calls."""
    return await _state(loom, thread_id, caller, body.checkpoint.checkpoint_id, body.subgraphs)


@router.post("/{thread_id}/state")
async def update_state(thread_id: str, body: StateUpdate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    user = caller.identity
    async with loom.sessions() as session:
        key = (await visible_thread(session, thread_id, caller, "update")).thread_id
    async with loom.sessions.begin() as session, loom.manager.idle_thread(thread_key(user, thread_id), key):
        thread = await owned_thread(session, thread_id, user)
        config = _config(key, body.checkpoint_id or (body.checkpoint.checkpoint_id if body.checkpoint else None))
        async with _graph_of(loom, thread, "threads.update", caller) as graph:
            if config["configurable"].get("checkpoint_id"):
                await _snapshot_or_404(graph, config)
            try:
                new_config = await graph.aupdate_state(config, body.values, as_node=body.as_node)
            except (ValueError, KeyError, InvalidUpdateError) as exc:  # unknown as_node, values of the wrong shape
                raise ApiError(422, "invalid_state_update", str(exc)) from exc
        thread.updated_at = now()
    checkpoint = {**new_config["configurable"], "thread_id": thread_id}  # the id the client knows, not the key
    # as langgraph-api: JS clients (Studio, useStream) read ``configurable.checkpoint_id``
    return {"checkpoint": checkpoint, "configurable": checkpoint, "checkpoint_id": checkpoint["checkpoint_id"]}


@router.post("/{thread_id}/history")
async def history(thread_id: str, body: HistoryQuery, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    async with loom.sessions() as session:
        thread = await visible_thread(session, thread_id, caller, "read")
    if thread.graph_id is None:
        return []
    before_id = body.before_id()
    before_config = _config(thread.thread_id, before_id) if before_id else None
    config = _config(thread.thread_id)
    async with _graph_of(loom, thread, "threads.read", caller) as graph:
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
    async with _graph_of(loom, thread, "threads.read", caller) as graph:
        snapshot = await _snapshot_or_404(graph, _config(thread.thread_id, checkpoint_id), subgraphs)
    return snapshot_view(snapshot, thread_id)


async def _snapshot_or_404(graph: Any, config: RunnableConfig, subgraphs: bool = False) -> StateSnapshot:
    snapshot: StateSnapshot = await graph.aget_state(config, subgraphs=subgraphs)
    checkpoint_id = config["configurable"].get("checkpoint_id")
    if checkpoint_id and snapshot.created_at is None:
        raise not_found("checkpoint", checkpoint_id)
    return snapshot


def _graph_of(loom: Services, thread: ThreadRow, access: AccessContext, caller: Caller) -> Any:
    """The thread's graph, as its factory builds it for ``access`` by the caller (a context manager)."""
    if thread.graph_id is None:
        raise ApiError(409, "thread_has_no_graph", "this thread has no runs yet, so it has no state to update")
    return loom.graph_for(thread.graph_id, access, caller.user, _config(thread.thread_id))


def _config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def snapshot_view(snapshot: StateSnapshot | None, thread_id: str | None = None) -> dict[str, Any]:
    if snapshot is None:
        return {"values": {}, "next": [], "tasks": [], "checkpoint": None, "metadata": {}, "created_at": None,
                "parent_checkpoint": None, "interrupts": [], "checkpoint_id": None,
                "parent_checkpoint_id": None}  # fmt: skip
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path),
                "error": repr(task.error) if task.error else None,
                "interrupts": interrupt_views(task.interrupts),
                "checkpoint": None,
                "state": snapshot_view(task.state) if isinstance(task.state, StateSnapshot) else None,
                "result": task.result,
            }
            for task in snapshot.tasks
        ],
        "checkpoint": checkpoint_of(snapshot.config),
        "parent_checkpoint": checkpoint_of(snapshot.parent_config),
        "checkpoint_id": (snapshot.config or {}).get("configurable", {}).get("checkpoint_id"),
        "parent_checkpoint_id": (snapshot.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
        "metadata": snapshot.metadata or {},
        "created_at": snapshot.created_at,
        "interrupts": interrupt_views(snapshot.interrupts),
    }


async def thread_view(loom: Services, thread: ThreadRow, new: bool = False) -> dict[str, Any]:
    """The thread as langgraph-api shows it; ``config`` and ``error`` are those of its latest run.

    Called with no session open: it reads the latest run in a session of its own. A thread made by this
    request (``new``) has neither checkpoints nor runs, so nothing is read."""
    values: Any = {}
    interrupts: dict[str, Any] = {}
    state_updated_at: Any = thread.updated_at
    if thread.graph_id is not None and not new:
        snapshot = await loom.graphs[thread.graph_id].aget_state(_config(thread.thread_id))
        values = snapshot.values
        state_updated_at = snapshot.created_at or state_updated_at
        for task in snapshot.tasks:
            if task.interrupts:
                interrupts[task.id] = interrupt_views(task.interrupts)
    latest = None
    if not new:
        async with loom.sessions() as session:
            query = select(RunRow).where(RunRow.thread_id == thread.thread_id).order_by(RunRow.created_at.desc())
            latest = await session.scalar(query.limit(1))
    return {
        "thread_id": public_thread_id(thread.thread_id),
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
        "state_updated_at": state_updated_at,
        "metadata": thread.metadata_,
        "config": (latest.kwargs.get("config") or {}) if latest else {},
        "status": thread.status,
        "values": values,
        "interrupts": interrupts,
        "error": latest.error if latest is not None and thread.status == "error" else None,
    }
