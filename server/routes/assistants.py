"""Assistants: create, read, patch (a new version each time), delete, search, count, versions, set latest.

The rows, their queries and the rules (default assistants, visibility, config/context kept in step) are in
``server.data.assistants``; these routes only parse, call and answer.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field, field_validator

from server.auth import Caller, CurrentCaller
from server.data import assistants
from server.data.assistants import AssistantRow, FieldName, selected, version_view, view
from server.deps import Loom, Services
from server.graph_schemas import schemas_of
from server.responses import Assistant, AssistantVersion, SelectedAssistant
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
async def create(body: AssistantCreate, loom: Loom, caller: CurrentCaller) -> Assistant:
    """Creates an assistant: a served graph with saved config, context, metadata, name and description (send
    ``context`` or ``config.configurable``, not both: they are kept equal). Answers it at version 1; with
    ``if_exists="do_nothing"`` the caller's existing one, else 409 ``assistant_exists``; 404 for an unknown
    graph."""
    loom.graphs.served(body.graph_id)
    user, asked = caller.identity, {**body.model_dump(), "metadata": dict(body.metadata or {})}
    await caller.authorize("assistants", "create", asked)  # a project's handler may stamp metadata on it
    config, context = assistants.synced(dict(body.config or {}), body.context)
    row = await assistants.create(
        loom.sessions, body.assistant_id or str(uuid.uuid4()), user, body.if_exists, graph_id=body.graph_id,
        name=body.name or "Untitled", description=body.description, config=config, context=context or {},
        metadata_=asked["metadata"],
    )  # fmt: skip
    return view(row)


@router.post("/search", response_model=list[SelectedAssistant])
async def search(body: AssistantSearch, loom: Loom, caller: CurrentCaller, response: Response) -> list[dict[str, Any]]:
    """The caller's assistants and the graphs' default ones, by ``graph_id``, ``name`` (contains, any case) and
    ``metadata``, sorted and paged; ``select`` keeps the named fields. Headers ``X-Pagination-Total`` and, when
    there are more, ``X-Pagination-Next``."""
    filters = await caller.authorize("assistants", "search", body.model_dump())
    rows = await _matching(loom, caller.identity, body, filters, (body.sort_by, body.sort_order))
    page = rows[body.offset : body.offset + body.limit]
    response.headers["X-Pagination-Total"] = str(len(rows))
    if body.offset + body.limit < len(rows):
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return [selected(view(row), body.select) for row in page]


@router.post("/count")
async def count(body: AssistantCount, loom: Loom, caller: CurrentCaller) -> int:
    """How many assistants a search with these ``graph_id``, ``name`` and ``metadata`` finds."""
    filters = await caller.authorize("assistants", "search", body.model_dump())
    return len(await _matching(loom, caller.identity, body, filters))


@router.get("/{assistant_id}")
async def get(assistant_id: str, loom: Loom, caller: CurrentCaller) -> Assistant:
    """The assistant, by id or by graph id (its default assistant); 404 if unknown or another user's."""
    return view(await _readable(loom, caller, assistant_id))


@router.patch("/{assistant_id}")
async def patch(assistant_id: str, body: AssistantPatch, loom: Loom, caller: CurrentCaller) -> Assistant:
    """Changes the fields sent (metadata is merged) as a new version and answers the assistant. 409
    ``assistant_is_default`` for a graph's default assistant, 404 for an unknown assistant or graph."""
    filters = await caller.authorize("assistants", "update", {"assistant_id": assistant_id, **body.model_dump()})
    if body.graph_id is not None:
        loom.graphs.served(body.graph_id)
    config, context = assistants.synced(dict(body.config or {}), body.context)
    changes = {**body.model_dump(include={"graph_id", "metadata", "name", "description"}), "config": config,
               "context": context}  # fmt: skip
    return view(await assistants.update(loom.sessions, assistant_id, caller.identity, loom.graphs, filters, changes))


@router.delete("/{assistant_id}", status_code=204)
async def remove(assistant_id: str, loom: Loom, caller: CurrentCaller) -> Response:
    """Deletes the assistant with its versions and its crons; threads and runs that used it stay. 204; 409
    ``assistant_is_default`` for a graph's default assistant, 404 if unknown."""
    filters = await caller.authorize("assistants", "delete", {"assistant_id": assistant_id})
    await assistants.remove(loom.sessions, assistant_id, caller.identity, loom.graphs, filters)
    return Response(status_code=204)


@router.post("/{assistant_id}/versions")
async def versions(assistant_id: str, body: VersionSearch, loom: Loom, caller: CurrentCaller) -> list[AssistantVersion]:
    """The assistant's versions, newest first, matching ``metadata``, paged by ``limit`` and ``offset``."""
    row = await _readable(loom, caller, assistant_id)
    found = await assistants.versions(loom.sessions, row.assistant_id, body.metadata)
    return [version_view(version) for version in found[body.offset : body.offset + body.limit]]


@router.post("/{assistant_id}/latest")
async def set_latest(assistant_id: str, body: LatestVersion, loom: Loom, caller: CurrentCaller) -> Assistant:
    """Makes ``version`` the assistant's current one (its saved fields copied back) and answers the
    assistant; 404 for a version it never had, 409 ``assistant_is_default`` for a default assistant."""
    filters = await caller.authorize("assistants", "update", {"assistant_id": assistant_id, "version": body.version})
    row = await assistants.set_latest(loom.sessions, assistant_id, caller.identity, loom.graphs, filters, body.version)
    return view(row)


@router.get("/{assistant_id}/graph")
async def graph(
    assistant_id: str, loom: Loom, caller: CurrentCaller, xray: int | bool = Query(False)
) -> dict[str, Any]:
    """The assistant's graph as nodes and edges (``xray``: subgraphs drawn inside, to that depth); a factory's
    graph as it builds for this assistant's config and the caller (500 ``graph_factory_failed`` if it raises)."""
    row = await _readable(loom, caller, assistant_id)
    async with _built(loom, row, caller) as built:  # a factory: drawn as it builds for this assistant and caller
        return built.get_graph(xray=xray).to_json()


@router.get("/{assistant_id}/subgraphs")
async def subgraphs(assistant_id: str, loom: Loom, caller: CurrentCaller, recurse: bool = False) -> dict[str, Any]:
    """The graph's subgraphs by namespace, each with its input, output, state, config and context schemas;
    ``recurse`` includes nested ones."""
    return await subgraphs_in(assistant_id, None, loom, caller, recurse)


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def subgraphs_in(
    assistant_id: str, namespace: str | None, loom: Loom, caller: CurrentCaller, recurse: bool = False
) -> dict[str, Any]:
    """The subgraphs under ``namespace``, each with its schemas (``recurse``: nested ones too)."""
    async with _built(loom, await _readable(loom, caller, assistant_id), caller) as compiled:
        found = compiled.get_subgraphs(namespace=namespace, recurse=recurse)
        return {ns: schemas_of(ns, sub) for ns, sub in found}


@router.get("/{assistant_id}/schemas")
async def schemas(assistant_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    """The assistant's graph id with its input, output, state, config and context JSON schemas."""
    row = await _readable(loom, caller, assistant_id)
    async with _built(loom, row, caller) as compiled:
        return {"graph_id": row.graph_id, **schemas_of(row.graph_id, compiled)}


def _built(loom: Services, row: AssistantRow, caller: Caller) -> Any:
    """The assistant's graph as its factory builds it for reading (``assistants.read``) with the assistant's config."""
    return loom.graph_for(row.graph_id, "assistants.read", caller.user, copy.deepcopy(row.config))


async def _readable(loom: Services, caller: Caller, assistant_id: str) -> AssistantRow:
    """The assistant, if the project's auth lets the caller read it (its filter on the metadata)."""
    filters = await caller.authorize("assistants", "read", {"assistant_id": assistant_id})
    return assistants.allowed(await loom.assistant(assistant_id, caller.identity), filters, assistant_id)


async def _matching(
    loom: Services, user: str, body: AssistantCount, filters: dict[str, Any], order: tuple[str, str] | None = None
) -> list[AssistantRow]:
    """The caller's and the default assistants of served graphs that a search or count asks for."""
    if body.graph_id is not None:
        loom.graphs.served(body.graph_id)
    return await assistants.matching(loom.sessions, user, loom.graphs, filters, body.graph_id, body.name,
                                     body.metadata, order)  # fmt: skip
