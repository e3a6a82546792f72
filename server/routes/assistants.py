"""Assistants: create, read, patch (a new version each time), delete, search, count, versions, set latest.

The rows and the rules (default assistants, visibility, config/context kept in step) are in
``server.assistants``; these routes only parse, check and answer.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field, field_validator
from sqlalchemy import asc, delete, desc, func, select

from server import assistants
from server.assistants import AssistantRow, AssistantVersionRow, FieldName, find_own, view, visible_to
from server.auth import Caller, CurrentCaller, matches, metadata_match
from server.db import CronRow, now
from server.deps import Loom, Services
from server.errors import ApiError, not_found
from server.graph_schemas import schemas_of
from server.schemas import MAX_OFFSET, JsonInt, Strict

router = APIRouter(prefix="/assistants", tags=["assistants"])
Name = Field(default=None, min_length=1, max_length=256)
Description = Field(default=None, max_length=4096)


class AssistantCreate(Strict):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = Name
    description: str | None = Description
    if_exists: Literal["raise", "do_nothing"] = "raise"

    @field_validator("assistant_id")
    @classmethod
    def uuid_only(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                return str(uuid.UUID(value))
            except ValueError as exc:
                raise ValueError("must be a UUID") from exc
        return value


class AssistantPatch(Strict):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = Name
    description: str | None = Description


class AssistantCount(Strict):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = Field(default=None, max_length=256)


class AssistantSearch(AssistantCount):
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[FieldName] | None = None


class VersionSearch(Strict):
    metadata: dict[str, Any] | None = None
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)


class LatestVersion(Strict):
    version: JsonInt = Field(ge=1, le=2**31 - 1)


@router.post("")
async def create(body: AssistantCreate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    loom.graphs.served(body.graph_id)
    user, asked = caller.identity, {**body.model_dump(), "metadata": dict(body.metadata or {})}
    await caller.authorize("assistants", "create", asked)  # a project's handler may stamp metadata on it
    config, context = assistants.synced(dict(body.config or {}), body.context)
    assistant_id = body.assistant_id or str(uuid.uuid4())
    async with loom.sessions.begin() as session:
        if (existing := await session.get(AssistantRow, assistant_id)) is not None:
            if body.if_exists == "raise" or not assistants.visible(existing.owner, user):
                raise ApiError(409, "assistant_exists", f"assistant {assistant_id!r} already exists")
            return view(existing)
        row = AssistantRow(assistant_id=assistant_id, owner=user, graph_id=body.graph_id,
                           name=body.name or "Untitled", description=body.description, config=config,
                           context=context or {}, metadata_=asked["metadata"], version=1,
                           created_at=now(), updated_at=now())  # fmt: skip
        session.add(row)
        await session.flush()
        session.add(assistants.snapshot(row))
    return view(row)


@router.post("/search")
async def search(body: AssistantSearch, loom: Loom, caller: CurrentCaller, response: Response) -> list[dict[str, Any]]:
    filters = await caller.authorize("assistants", "search", body.model_dump())
    query = _matching(loom, caller.identity, body)
    order = desc if body.sort_order == "desc" else asc
    column = getattr(AssistantRow, body.sort_by)
    key = func.lower(column) if body.sort_by in ("name", "graph_id") else column
    async with loom.sessions() as session:
        rows = list((await session.scalars(query.order_by(order(key), order(AssistantRow.assistant_id)))).all())
    rows = metadata_match(rows, body.metadata, filters)
    page = rows[body.offset : body.offset + body.limit]
    response.headers["X-Pagination-Total"] = str(len(rows))
    if body.offset + body.limit < len(rows):
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return [view(row, body.select) for row in page]


@router.post("/count")
async def count(body: AssistantCount, loom: Loom, caller: CurrentCaller) -> int:
    filters = await caller.authorize("assistants", "search", body.model_dump())
    async with loom.sessions() as session:
        rows = list((await session.scalars(_matching(loom, caller.identity, body))).all())
    return len(metadata_match(rows, body.metadata, filters))


@router.get("/{assistant_id}")
async def get(assistant_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    return view(await _readable(loom, caller, assistant_id))


@router.patch("/{assistant_id}")
async def patch(assistant_id: str, body: AssistantPatch, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    filters = await caller.authorize("assistants", "update", {"assistant_id": assistant_id, **body.model_dump()})
    if body.graph_id is not None:
        loom.graphs.served(body.graph_id)
    config, context = assistants.synced(dict(body.config or {}), body.context)
    async with loom.sessions.begin() as session:
        row = _allowed(await find_own(session, assistant_id, caller.identity, loom.graphs), filters, assistant_id)
        row.version = await assistants.latest_version(session, row.assistant_id) + 1
        row.graph_id = body.graph_id or row.graph_id
        row.config = config or row.config
        row.context = row.context if context is None else context
        row.metadata_ = {**row.metadata_, **(body.metadata or {})}
        row.name = body.name if body.name is not None else row.name
        row.description = body.description if body.description is not None else row.description
        row.updated_at = now()
        session.add(assistants.snapshot(row))
    return view(row)


@router.delete("/{assistant_id}", status_code=204)
async def remove(assistant_id: str, loom: Loom, caller: CurrentCaller) -> Response:
    """Its versions and its crons go with it; threads and runs that used it stay."""
    filters = await caller.authorize("assistants", "delete", {"assistant_id": assistant_id})
    async with loom.sessions.begin() as session:
        row = _allowed(await find_own(session, assistant_id, caller.identity, loom.graphs), filters, assistant_id)
        await session.execute(delete(CronRow).where(CronRow.assistant_id == row.assistant_id))
        await session.execute(delete(AssistantVersionRow).where(AssistantVersionRow.assistant_id == row.assistant_id))
        await session.delete(row)
    return Response(status_code=204)


@router.post("/{assistant_id}/versions")
async def versions(assistant_id: str, body: VersionSearch, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    row = await _readable(loom, caller, assistant_id)
    async with loom.sessions() as session:
        query = select(AssistantVersionRow).where(AssistantVersionRow.assistant_id == row.assistant_id)
        found = list((await session.scalars(query.order_by(AssistantVersionRow.version.desc()))).all())
    found = metadata_match(found, body.metadata, {})
    return [view(version) for version in found[body.offset : body.offset + body.limit]]


@router.post("/{assistant_id}/latest")
async def set_latest(assistant_id: str, body: LatestVersion, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    filters = await caller.authorize("assistants", "update", {"assistant_id": assistant_id, "version": body.version})
    async with loom.sessions.begin() as session:
        row = _allowed(await find_own(session, assistant_id, caller.identity, loom.graphs), filters, assistant_id)
        chosen = await session.get(AssistantVersionRow, (row.assistant_id, body.version))
        if chosen is None:
            raise not_found("assistant_version", f"{assistant_id} v{body.version}")
        for field in assistants.VERSIONED:
            setattr(row, field, getattr(chosen, field))
        row.version, row.updated_at = chosen.version, now()
    return view(row)


@router.get("/{assistant_id}/graph")
async def graph(
    assistant_id: str, loom: Loom, caller: CurrentCaller, xray: int | bool = Query(False)
) -> dict[str, Any]:
    row = await _readable(loom, caller, assistant_id)
    async with _built(loom, row, caller) as built:  # a factory: drawn as it builds for this assistant and caller
        return built.get_graph(xray=xray).to_json()


@router.get("/{assistant_id}/subgraphs")
async def subgraphs(assistant_id: str, loom: Loom, caller: CurrentCaller, recurse: bool = False) -> dict[str, Any]:
    return await subgraphs_in(assistant_id, None, loom, caller, recurse)


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def subgraphs_in(
    assistant_id: str, namespace: str | None, loom: Loom, caller: CurrentCaller, recurse: bool = False
) -> dict[str, Any]:
    async with _built(loom, await _readable(loom, caller, assistant_id), caller) as compiled:
        found = compiled.get_subgraphs(namespace=namespace, recurse=recurse)
        return {ns: schemas_of(ns, sub) for ns, sub in found}


@router.get("/{assistant_id}/schemas")
async def schemas(assistant_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    row = await _readable(loom, caller, assistant_id)
    async with _built(loom, row, caller) as compiled:
        return {"graph_id": row.graph_id, **schemas_of(row.graph_id, compiled)}


def _built(loom: Services, row: AssistantRow, caller: Caller) -> Any:
    """The assistant's graph as its factory builds it for reading (``assistants.read``) with the assistant's config."""
    return loom.graph_for(row.graph_id, "assistants.read", caller.user, copy.deepcopy(row.config))


async def _readable(loom: Services, caller: Caller, assistant_id: str) -> AssistantRow:
    """The assistant, if the project's auth lets the caller read it (its filter on the metadata)."""
    filters = await caller.authorize("assistants", "read", {"assistant_id": assistant_id})
    return _allowed(await loom.assistant(assistant_id, caller.identity), filters, assistant_id)


def _allowed(row: AssistantRow, filters: dict[str, Any], assistant_id: str) -> AssistantRow:
    """A row the handler's filter leaves out looks like one that does not exist."""
    if not matches(row.metadata_, filters):
        raise not_found("assistant", assistant_id)
    return row


def _matching(loom: Services, user: str, body: AssistantCount) -> Any:
    """The caller's and the default assistants of served graphs, by graph and name (metadata is matched after)."""
    if body.graph_id is not None:
        loom.graphs.served(body.graph_id)
    query = select(AssistantRow).where(visible_to(user), AssistantRow.graph_id.in_(list(loom.graphs)))
    if body.graph_id is not None:
        query = query.where(AssistantRow.graph_id == body.graph_id)
    if body.name:
        query = query.where(func.lower(AssistantRow.name).contains(body.name.lower(), autoescape=True))
    return query
