"""Assistants: one per graph in langgraph.json, with the ids langgraph-api would give them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from server.auth import Caller, CurrentCaller, matches
from server.deps import Loom, Services
from server.errors import not_found
from server.schemas import AssistantSearch

router = APIRouter(prefix="/assistants", tags=["assistants"])


@router.post("/search")
async def search(body: AssistantSearch, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    filters = await caller.authorize("assistants", "search", body.model_dump())
    found = [a for a in map(loom.assistant, sorted(loom.graphs)) if matches(a["metadata"], filters)]
    if body.graph_id:
        found = [a for a in found if a["graph_id"] == body.graph_id]
    if body.name:
        found = [a for a in found if body.name in a["name"]]
    if body.metadata:
        found = [a for a in found if all(a["metadata"].get(k) == v for k, v in body.metadata.items())]
    return found[body.offset : body.offset + body.limit]


@router.get("/{assistant_id}")
async def get(assistant_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    return loom.assistant(await _readable(loom, caller, assistant_id))


@router.get("/{assistant_id}/graph")
async def graph(
    assistant_id: str, loom: Loom, caller: CurrentCaller, xray: int | bool = Query(False)
) -> dict[str, Any]:
    compiled = loom.graphs[await _readable(loom, caller, assistant_id)]
    return compiled.get_graph(xray=xray).to_json()


@router.get("/{assistant_id}/subgraphs")
async def subgraphs(assistant_id: str, loom: Loom, caller: CurrentCaller, recurse: bool = False) -> dict[str, Any]:
    compiled = loom.graphs[await _readable(loom, caller, assistant_id)]
    return {ns: schemas_of(sub) for ns, sub in compiled.get_subgraphs(recurse=recurse)}


@router.get("/{assistant_id}/schemas")
async def schemas(assistant_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    graph_id = await _readable(loom, caller, assistant_id)
    return {"graph_id": graph_id, **schemas_of(loom.graphs[graph_id])}


async def _readable(loom: Services, caller: Caller, assistant_id: str) -> str:
    """The assistant's graph, if the project's auth lets the caller read it (its filter on the metadata)."""
    filters = await caller.authorize("assistants", "read", {"assistant_id": assistant_id})
    graph_id = loom.graph_id_for(assistant_id)
    if not matches(loom.assistant(graph_id)["metadata"], filters):
        raise not_found("assistant", assistant_id)
    return graph_id


def schemas_of(compiled: Any) -> dict[str, Any]:
    return {
        "input_schema": compiled.get_input_jsonschema(),
        "output_schema": compiled.get_output_jsonschema(),
        "state_schema": _state_schema(compiled),
        "config_schema": {"title": "Config", "type": "object", "properties": {}},
        "context_schema": compiled.get_context_jsonschema(),
    }


def _state_schema(compiled: Any) -> dict[str, Any]:
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(compiled.builder.state_schema).json_schema()
    except Exception:  # state types that pydantic cannot describe (e.g. arbitrary objects)
        return {"title": compiled.builder.state_schema.__name__, "type": "object"}
