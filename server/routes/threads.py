"""Threads: create/get/search/patch/delete, state at any checkpoint, state updates, history."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Response
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot
from langgraph_sdk.runtime import AccessContext
from pydantic import StrictBool

from loom.threads import public_thread_id, thread_key
from server.auth import Caller, CurrentCaller
from server.data import threads
from server.db import ThreadRow
from server.deps import Loom, Services, caller_thread
from server.engine.wire import checkpoint_of, interrupt_views
from server.errors import ApiError, not_found
from server.responses import Checkpoint, Interrupt, SelectedThread, StateUpdated, Thread, ThreadState
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
async def create(body: ThreadCreate, loom: Loom, caller: CurrentCaller) -> Thread:
    """Creates a thread: ``thread_id`` optional (a UUID if absent), ``metadata``, ``graph_id``. Ids are per
    owner (``loom.threads``): an id another user holds is free for this caller. Answers the thread; with
    ``if_exists="do_nothing"`` the caller's existing one, with ``raise`` (the default) 409 ``thread_exists``;
    404 for an unknown ``graph_id``."""
    user = caller.identity
    value: dict[str, Any] = {"thread_id": body.thread_id, "metadata": dict(body.metadata), "if_exists": body.if_exists}
    await caller.authorize("threads", "create", value)  # a project's handler may stamp metadata on it
    if body.graph_id is not None:
        loom.graphs.served(body.graph_id)
    thread, new = await threads.create(loom.sessions, user, body.thread_id, body.graph_id, value["metadata"],
                                       body.if_exists)  # fmt: skip
    return await thread_view(loom, thread, new=new)


@router.post("/search", response_model=list[SelectedThread])
async def search(body: ThreadSearch, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    """The caller's threads matching ``metadata``, ``status``, ``ids`` and ``values``, sorted and paged; ``select``
    keeps the named fields, ``extract`` adds ``extracted`` with the values its paths point at."""
    filters = await caller.authorize("threads", "search", body.model_dump())
    rows = await threads.matching(loom.sessions, caller.identity, filters, body.status, body.metadata, body.ids,
                                  (body.sort_by, body.sort_order))  # fmt: skip
    window = slice(body.offset, body.offset + body.limit)
    if body.values:  # values live in checkpoints: every candidate's state is read (only when asked)
        views = [await thread_view(loom, row) for row in rows]
        page = [v for v in views if all(_value(v["values"], k) == want for k, want in body.values.items())][window]
    else:
        page = [await thread_view(loom, row) for row in rows[window]]
    return [_shaped(view, body) for view in page]


def _shaped(view: Thread, body: ThreadSearch) -> dict[str, Any]:
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
    """How many of the caller's threads match ``metadata`` and ``status``."""
    filters = await caller.authorize("threads", "search", body.model_dump())
    return len(await threads.matching(loom.sessions, caller.identity, filters, body.status, body.metadata))


@router.get("/{thread_id}")
async def get(thread_id: str, loom: Loom, caller: CurrentCaller) -> Thread:
    """The thread with its current values, interrupts, and its latest run's config and error; 404 if unknown."""
    return await thread_view(loom, await caller_thread(loom, thread_id, caller, "read"))


@router.patch("/{thread_id}")
async def patch(thread_id: str, body: ThreadPatch, loom: Loom, caller: CurrentCaller) -> Thread:
    """Merges ``metadata`` into the thread's (a key sent wins) and answers the thread; 404 if unknown."""
    filters = await caller.authorize("threads", "update", {"thread_id": thread_id})
    return await thread_view(loom, await threads.merge_metadata(loom.sessions, thread_id, caller.identity, filters,
                                                                body.metadata))  # fmt: skip


@router.post("/{thread_id}/copy")
async def copy(thread_id: str, loom: Loom, caller: CurrentCaller) -> Thread:
    """A new thread of the caller's with the same metadata and every checkpoint, so it continues from there;
    answers the new thread. 404 if the source is unknown."""
    source = await caller_thread(loom, thread_id, caller, "read")
    value: dict[str, Any] = {"thread_id": None, "metadata": dict(source.metadata_)}
    await caller.authorize("threads", "create", value)
    thread = await threads.add_copy(loom.sessions, source, caller.identity, value["metadata"])
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
    """Cancels the thread's runs and deletes it with its runs, crons, checkpoints and artifacts; 204, 404 if
    unknown."""
    key = (await caller_thread(loom, thread_id, caller, "delete")).thread_id
    await loom.manager.cancel_thread(key)
    await threads.delete(loom.sessions, thread_id, caller.identity)
    await loom.checkpointer.adelete_thread(key)
    await asyncio.to_thread(remove_thread_artifacts, loom.settings, caller.identity, thread_id)
    return Response(status_code=204)


@router.get("/{thread_id}/state")
async def get_state(thread_id: str, loom: Loom, caller: CurrentCaller, subgraphs: bool = False) -> ThreadState:
    """The thread's current state: values, next nodes, tasks with their interrupts, checkpoint, metadata;
    ``subgraphs`` includes subgraphs' states in their tasks. Empty for a thread that has not run."""
    return await _state(loom, thread_id, caller, None, subgraphs)


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: str, checkpoint_id: str, loom: Loom, caller: CurrentCaller, subgraphs: bool = False
) -> ThreadState:
    """The thread's state at ``checkpoint_id``; 404 for a checkpoint the thread does not have."""
    return await _state(loom, thread_id, caller, checkpoint_id, subgraphs)


@router.post("/{thread_id}/state/checkpoint")
async def get_state_at_checkpoint(
    thread_id: str, body: StateAtCheckpoint, loom: Loom, caller: CurrentCaller
) -> ThreadState:
    """The thread's state at ``checkpoint`` (what the SDK's ``get_state(checkpoint=…)`` calls);
    404 for a checkpoint the thread does not have."""
    return await _state(loom, thread_id, caller, body.checkpoint.checkpoint_id, body.subgraphs)


@router.post("/{thread_id}/state")
async def update_state(thread_id: str, body: StateUpdate, loom: Loom, caller: CurrentCaller) -> StateUpdated:
    """Writes ``values`` to the thread's state as if node ``as_node`` had returned them, from the latest
    checkpoint or ``checkpoint_id`` (``as_node="__copy__"`` forks it), and answers the new checkpoint. 409
    ``thread_busy`` while a run has the thread, 409 ``thread_has_no_graph`` before its first run, 422
    ``invalid_state_update`` for an unknown node or values of the wrong shape."""
    user = caller.identity
    key = (await caller_thread(loom, thread_id, caller, "update")).thread_id
    async with (
        loom.manager.idle_thread(thread_key(user, thread_id), key),
        threads.changing(loom.sessions, thread_id, user) as thread,
    ):
        config = _config(key, body.checkpoint_id or (body.checkpoint.checkpoint_id if body.checkpoint else None))
        async with _graph_of(loom, thread, "threads.update", caller) as graph:
            if config["configurable"].get("checkpoint_id"):
                await _snapshot_or_404(graph, config)
            try:
                new_config = await graph.aupdate_state(config, body.values, as_node=body.as_node)
            except (ValueError, KeyError, InvalidUpdateError) as exc:  # unknown as_node, values of the wrong shape
                raise ApiError(422, "invalid_state_update", str(exc)) from exc
    saved = new_config["configurable"]
    checkpoint = cast(Checkpoint, {**saved, "thread_id": thread_id})  # the id the client knows, not the key
    # as langgraph-api: JS clients (Studio, useStream) read ``configurable.checkpoint_id``
    return {"checkpoint": checkpoint, "configurable": checkpoint, "checkpoint_id": saved["checkpoint_id"]}


@router.post("/{thread_id}/history")
async def history(thread_id: str, body: HistoryQuery, loom: Loom, caller: CurrentCaller) -> list[ThreadState]:
    """The thread's states, newest first: at most ``limit``, before ``before``, with checkpoint metadata
    matching ``metadata``; empty for a thread that has not run. 422 for a filter the checkpointer cannot query."""
    thread = await caller_thread(loom, thread_id, caller, "read")
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
) -> list[ThreadState]:
    """The thread's last ``limit`` states, newest first (``POST …/history`` with only a limit)."""
    return await history(thread_id, HistoryQuery(limit=limit), loom, caller)


async def _state(
    loom: Services, thread_id: str, caller: Caller, checkpoint_id: str | None, subgraphs: bool
) -> ThreadState:
    thread = await caller_thread(loom, thread_id, caller, "read")
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


def snapshot_view(snapshot: StateSnapshot | None, thread_id: str | None = None) -> ThreadState:
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
                "interrupts": _interrupts(task.interrupts),
                "checkpoint": None,
                "state": snapshot_view(task.state) if isinstance(task.state, StateSnapshot) else None,
                "result": task.result,
            }
            for task in snapshot.tasks
        ],
        "checkpoint": _checkpoint(snapshot.config),
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "checkpoint_id": (snapshot.config or {}).get("configurable", {}).get("checkpoint_id"),
        "parent_checkpoint_id": (snapshot.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
        "metadata": snapshot.metadata or {},
        "created_at": snapshot.created_at,
        "interrupts": _interrupts(snapshot.interrupts),
    }


def _interrupts(interrupts: Iterable[Any]) -> list[Interrupt]:
    return cast(list[Interrupt], interrupt_views(interrupts))  # typed once server.engine.wire's view is


def _checkpoint(config: RunnableConfig | None) -> Checkpoint | None:
    return cast(Checkpoint | None, checkpoint_of(config))  # typed once server.engine.wire's view is


async def thread_view(loom: Services, thread: ThreadRow, new: bool = False) -> Thread:
    """The thread as langgraph-api shows it; ``config`` and ``error`` are those of its latest run.

    Called with no session open: it reads the latest run in a session of its own. A thread made by this
    request (``new``) has neither checkpoints nor runs, so nothing is read."""
    values: Any = {}
    interrupts: dict[str, list[Interrupt]] = {}
    state_updated_at: Any = thread.updated_at
    if thread.graph_id is not None and not new:
        snapshot = await loom.graphs[thread.graph_id].aget_state(_config(thread.thread_id))
        values = snapshot.values
        state_updated_at = snapshot.created_at or state_updated_at
        for task in snapshot.tasks:
            if task.interrupts:
                interrupts[task.id] = _interrupts(task.interrupts)
    latest = None if new else await threads.latest_run(loom.sessions, thread.thread_id)
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
