"""Scheduled runs, as the Agent Server's cron endpoints: create (on a thread or stateless), get, patch, search, count,
delete."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import Field

from loom.threads import public_thread_id
from server.auth import Caller, CurrentCaller, metadata_match
from server.data.assistants import canonical_id
from server.db import CronRow, now
from server.deps import Loom, Services, visible_thread
from server.engine import crons
from server.engine.crons import CronOrder, next_fire
from server.errors import ApiError
from server.schemas import RunCreate, Strict

router = APIRouter(tags=["crons"])
CRON_ONLY = frozenset({"schedule", "end_time", "enabled", "timezone", "on_run_completed", "webhook"})


class CronCreate(RunCreate):
    schedule: str = Field(max_length=128)
    end_time: datetime | None = None
    enabled: bool = True
    timezone: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    webhook: str | None = None


class CronSearch(Strict):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    sort_by: CronOrder = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[str] | None = None


class CronCount(Strict):
    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None


async def _create(loom: Services, caller: Caller, thread_id: str | None, body: CronCreate) -> dict[str, Any]:
    user = caller.identity
    asked = {"thread_id": thread_id, "assistant_id": body.assistant_id, "metadata": dict(body.metadata or {})}
    await caller.authorize("crons", "create", asked)  # a project's handler may stamp metadata on it
    prepared = await loom.prepare(user, body)
    if body.command is not None:
        raise ApiError(422, "invalid_cron", "command: a cron starts new runs; send input")
    first = await asyncio.to_thread(next_fire, body.schedule, body.timezone, now())  # may read a zone file
    end_time = checked_end(body.end_time, first)
    if thread_id is not None:
        async with loom.sessions() as session:
            thread_id = (await visible_thread(session, thread_id, caller, "read")).thread_id
    kwargs = prepared.kwargs(ephemeral=False, exclude=CRON_ONLY)
    cron = CronRow(
        owner=user,
        assistant_id=prepared.assistant.assistant_id,
        graph_id=prepared.graph_id,
        thread_id=thread_id,
        schedule=body.schedule,
        timezone=body.timezone,
        payload={"kwargs": kwargs, "multitask_strategy": body.multitask_strategy},
        metadata_=asked["metadata"],
        enabled=body.enabled,
        on_run_completed=body.on_run_completed,
        end_time=end_time,
        next_run_date=first if body.enabled else None,
    )
    await crons.store(loom.sessions, cron)
    return cron_view(cron)


@router.post("/threads/{thread_id}/runs/crons")
async def create_for_thread(thread_id: str, body: CronCreate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    """Schedule runs on the thread: each firing of ``schedule`` (cron syntax, in ``timezone``) starts one, admitted
    like any run; answers 200 with the cron. 403 if the project's auth refuses, 404 for an unknown thread or
    assistant, 422 for a bad schedule, zone, ``end_time`` or run body (naming the field)."""
    return await _create(loom, caller, thread_id, body)


@router.post("/runs/crons")
async def create(body: CronCreate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    """Schedule stateless runs: each firing starts one on a new thread of its own; answers 200 with the cron.
    403 if the project's auth refuses, 404 for an unknown assistant, 422 for a bad schedule, zone, ``end_time``
    or run body (naming the field)."""
    return await _create(loom, caller, None, body)


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete(cron_id: str, loom: Loom, caller: CurrentCaller) -> Response:
    """Delete the cron (runs it started stay); 204, or 404 for a cron the caller cannot see."""
    filters = await caller.authorize("crons", "delete", {"cron_id": cron_id})
    await crons.remove(loom.sessions, cron_id, caller.identity, filters)
    return Response(status_code=204)


class CronPatch(Strict):
    """What ``PATCH /runs/crons/{id}`` changes: the schedule and its bounds, ``enabled``, metadata (merged in)."""

    schedule: str | None = Field(default=None, max_length=128)
    timezone: str | None = None
    end_time: datetime | None = None
    """``null`` removes the end."""
    enabled: bool | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    metadata: dict[str, Any] | None = None


def checked_end(end_time: datetime | None, first: datetime) -> datetime | None:
    """``end_time`` in UTC (naive: UTC); 422 unless it is after the next firing ``first``."""
    if end_time is None:
        return None
    end_time = end_time if end_time.tzinfo is not None else end_time.replace(tzinfo=UTC)
    if end_time <= first:
        message = f"end_time: {end_time.isoformat()} is not after the next firing, {first.isoformat()}"
        raise ApiError(422, "invalid_cron", message)
    return end_time


@router.get("/runs/crons/{cron_id}")
async def get(cron_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    """The cron (its schedule, next firing, run payload); 200, or 404 for a cron the caller cannot see."""
    filters = await caller.authorize("crons", "read", {"cron_id": cron_id})
    return cron_view(await crons.find(loom.sessions, cron_id, caller.identity, filters))


@router.patch("/runs/crons/{cron_id}")
async def patch(cron_id: str, body: CronPatch, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    """Change the cron's schedule, ``timezone``, ``end_time``, ``enabled``, ``on_run_completed`` or metadata
    (merged into its own); the next firing follows a new schedule, zone or ``enabled``. Run-body fields (input,
    config, …) are a 422 naming them: delete the cron and create it again. Answers 200 with the cron; 404 for a
    cron the caller cannot see, 422 for a bad schedule, zone or an ``end_time`` not after the next firing."""
    sent = body.model_fields_set
    filters = await caller.authorize("crons", "update", {"cron_id": cron_id, **body.model_dump(exclude_unset=True)})
    cron = await crons.find(loom.sessions, cron_id, caller.identity, filters)
    schedule, zone = body.schedule or cron.schedule, body.timezone if "timezone" in sent else cron.timezone
    enabled = cron.enabled if body.enabled is None else body.enabled
    following = await asyncio.to_thread(next_fire, schedule, zone, now())  # may read a zone file
    end_time = checked_end(body.end_time if "end_time" in sent else cron.end_time, following)
    timing = bool(sent & {"schedule", "timezone", "enabled"})

    def edit(row: CronRow) -> None:
        row.schedule, row.timezone, row.enabled, row.end_time = schedule, zone, enabled, end_time
        row.on_run_completed = body.on_run_completed or row.on_run_completed
        row.metadata_ = {**row.metadata_, **(body.metadata or {})}
        if timing:
            row.next_run_date = following if enabled else None

    return cron_view(await crons.change(loom.sessions, cron_id, caller.identity, filters, edit))


@router.post("/runs/crons/search")
async def search(body: CronSearch, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    """The caller's crons matching the filters, sorted and paged (``select``: only those fields); 200."""
    filters = await caller.authorize("crons", "search", body.model_dump())
    selection = _selection(loom, caller.identity, body.assistant_id, body.thread_id)
    rows = await crons.search(loom.sessions, selection, body.enabled, body.sort_by, body.sort_order == "desc")
    rows = metadata_match(rows, body.metadata, filters)
    rows = rows[body.offset : body.offset + body.limit]
    views = [cron_view(row) for row in rows]
    return [{k: v for k, v in view.items() if k in body.select} for view in views] if body.select else views


@router.post("/runs/crons/count")
async def count(body: CronCount, loom: Loom, caller: CurrentCaller) -> int:
    """How many of the caller's crons match the filters; 200 with the number."""
    filters = await caller.authorize("crons", "search", body.model_dump())
    selection = _selection(loom, caller.identity, body.assistant_id, body.thread_id)
    return await crons.count(loom.sessions, selection, body.metadata, filters)


def _selection(loom: Services, user: str, assistant_id: str | None, thread_id: str | None) -> crons.CronSelection:
    assistant = canonical_id(assistant_id, loom.graphs) if assistant_id else None
    return crons.CronSelection(user, assistant, thread_id)


def cron_view(cron: CronRow) -> dict[str, Any]:
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": public_thread_id(cron.thread_id) if cron.thread_id else None,
        "on_run_completed": cron.on_run_completed,
        "end_time": cron.end_time,
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "created_at": cron.created_at,
        "updated_at": cron.updated_at,
        "payload": {**cron.payload.get("kwargs", {}), "assistant_id": cron.assistant_id},
        "user_id": cron.owner,
        "next_run_date": cron.next_run_date,
        "metadata": cron.metadata_,
        "enabled": cron.enabled,
    }
