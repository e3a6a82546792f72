"""Scheduled runs, as the Agent Server's cron endpoints: create (on a thread or stateless), search, count, delete."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import Field
from sqlalchemy import asc, desc, func, select

from loom.threads import public_thread_id, thread_key
from server.assistants import canonical_id, merged_run
from server.auth import Caller, CurrentCaller, matches, metadata_match
from server.db import CronRow, now
from server.deps import Loom, Services, visible_thread
from server.engine.context import configurable_as_context
from server.engine.crons import next_fire
from server.errors import ApiError, not_found
from server.routes.runs import run_kwargs, validate_input
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
    sort_by: Literal["cron_id", "assistant_id", "thread_id", "next_run_date", "created_at", "updated_at"] = "created_at"
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
    assistant = await loom.assistant(body.assistant_id, user)
    graph_id = assistant.graph_id
    body = merged_run(configurable_as_context(loom.graphs[graph_id], body), assistant)
    validate_input(loom, graph_id, body.input)
    if body.command is not None:
        raise ApiError(422, "invalid_cron", "command: a cron starts new runs; send input")
    first = await asyncio.to_thread(next_fire, body.schedule, body.timezone, now())  # may read a zone file
    end_time = body.end_time
    if end_time is not None:
        end_time = end_time if end_time.tzinfo is not None else end_time.replace(tzinfo=UTC)  # naive: UTC
        if end_time <= first:
            message = f"end_time: {end_time.isoformat()} is not after the first firing, {first.isoformat()}"
            raise ApiError(422, "invalid_cron", message)
    kwargs = run_kwargs(body, ephemeral=False, exclude=CRON_ONLY)
    async with loom.sessions.begin() as session:
        if thread_id is not None:
            thread_id = (await visible_thread(session, thread_id, caller, "read")).thread_id
        cron = CronRow(
            owner=user,
            assistant_id=assistant.assistant_id,
            graph_id=graph_id,
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
        session.add(cron)
    return cron_view(cron)


@router.post("/threads/{thread_id}/runs/crons")
async def create_for_thread(thread_id: str, body: CronCreate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    return await _create(loom, caller, thread_id, body)


@router.post("/runs/crons")
async def create(body: CronCreate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    return await _create(loom, caller, None, body)


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete(cron_id: str, loom: Loom, caller: CurrentCaller) -> Response:
    filters = await caller.authorize("crons", "delete", {"cron_id": cron_id})
    async with loom.sessions.begin() as session:
        cron = await session.get(CronRow, cron_id)
        if cron is None or cron.owner != caller.identity or not matches(cron.metadata_, filters):
            raise not_found("cron", cron_id)
        await session.delete(cron)
    return Response(status_code=204)


@router.post("/runs/crons/search")
async def search(body: CronSearch, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    filters = await caller.authorize("crons", "search", body.model_dump())
    query = _filtered(loom, caller.identity, body.assistant_id, body.thread_id)
    if body.enabled is not None:
        query = query.where(CronRow.enabled.is_(body.enabled))
    order = desc if body.sort_order == "desc" else asc
    query = query.order_by(order(getattr(CronRow, body.sort_by)))
    async with loom.sessions() as session:
        rows = list((await session.scalars(query)).all())
    rows = metadata_match(rows, body.metadata, filters)
    rows = rows[body.offset : body.offset + body.limit]
    views = [cron_view(row) for row in rows]
    return [{k: v for k, v in view.items() if k in body.select} for view in views] if body.select else views


@router.post("/runs/crons/count")
async def count(body: CronCount, loom: Loom, caller: CurrentCaller) -> int:
    filters = await caller.authorize("crons", "search", body.model_dump())
    query = _filtered(loom, caller.identity, body.assistant_id, body.thread_id)
    async with loom.sessions() as session:
        if body.metadata or filters:
            return len(metadata_match((await session.scalars(query)).all(), body.metadata, filters))
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
    return int(total or 0)


def _filtered(loom: Services, user: str, assistant_id: str | None, thread_id: str | None) -> Any:
    query = select(CronRow).where(CronRow.owner == user)
    if assistant_id:
        query = query.where(CronRow.assistant_id == canonical_id(assistant_id, loom.graphs))
    if thread_id:
        query = query.where(CronRow.thread_id.in_((thread_key(user, thread_id), thread_id)))  # the owner's only
    return query


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
