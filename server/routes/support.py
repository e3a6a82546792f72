"""``/support``: the support requests the support graph records, their resolution, and analytics.

Everything is scoped to the caller: another user's request is a 404, exactly like a missing one.
Conversations themselves run through the threads API (the request id is the thread id); these
routes read the ``support_requests`` table that the graph keeps in step, and a resolution is written
to the table here and to the thread's checkpoint by the support graph's ``resolve`` node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from pydantic import BaseModel, Field

from loom.settings import Settings, get_settings
from loom.threads import public_thread_id, thread_key
from server.auth import CurrentUser
from server.data import threads
from server.db import ThreadRow
from server.deps import Services
from server.errors import ApiError, not_found
from services.stores.support import RequestConflict, SupportStore, get_support_store
from services.webhooks import notify
from state.common import RunContext
from state.support import Category, Priority, Resolution, Status

router = APIRouter(prefix="/support", tags=["support"])
T = TypeVar("T")


class ResolveBody(BaseModel):
    summary: str = Field(min_length=1, max_length=4000, description="How the request was resolved")


def _settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


async def _in_store(request: Request, action: Callable[[SupportStore], T]) -> T:
    """``action`` on the support store, in a thread: its calls are sync, and the first opens the database."""
    settings = _settings(request)
    return await asyncio.to_thread(lambda: action(get_support_store(settings)))


@router.get("/requests")
async def list_requests(
    request: Request,
    user: CurrentUser,
    status: Annotated[Status | None, Query()] = None,
    category: Annotated[Category | None, Query()] = None,
    priority: Annotated[Priority | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The caller's support requests, newest first, filtered by status, category and priority:
    ``{requests, count}``."""
    filters = {"status": status, "category": category, "priority": priority}
    rows = await _in_store(request, lambda store: store.list_requests(user, filters, limit))
    return {"requests": [_public(row) for row in rows], "count": len(rows)}


@router.get("/requests/{request_id}")
async def get_request(request: Request, user: CurrentUser, request_id: str) -> dict[str, Any]:
    """One of the caller's support requests with its turns and approvals; 404 if unknown or another user's."""
    stored = await _stored_id(request, user, request_id)
    found = await _in_store(request, lambda store: store.get_request(user, stored))
    if found is None:
        raise not_found("support_request", request_id)
    return _public(found)


@router.post("/requests/{request_id}/resolve")
async def resolve_request(request: Request, user: CurrentUser, request_id: str, body: ResolveBody) -> dict[str, Any]:
    """Marks the request resolved, in the table and in the thread's checkpointed state, and calls the
    support webhook; answers the request with ``webhook_delivered``. 404 for an unknown request, 409
    ``already_resolved``, 409 ``thread_busy`` while a run has the request's thread. The graph reopens the request
    if the customer writes again."""
    services: Services | None = getattr(request.app.state, "services", None)
    stored = await _stored_id(request, user, request_id)
    async with contextlib.AsyncExitStack() as held:
        if services is not None:  # no run may start on the request's thread while both records change
            await held.enter_async_context(services.manager.idle_thread(stored))
        thread = await _served_thread(services, user, stored)
        at = datetime.now(UTC).replace(tzinfo=None)
        try:
            resolved = await _in_store(request, lambda store: store.resolve(user, stored, body.summary, at))
        except RequestConflict as exc:
            raise ApiError(409, "already_resolved", str(exc)) from exc
        if resolved is None:
            raise not_found("support_request", request_id)
        if services is not None and thread is not None:
            await _resolve_in_graph(services, thread, resolved)
    event_id = f"{stored}:resolved:{resolved['resolved_at']}"  # unique across users: the stored id
    delivered = await notify("support.request.resolved", event_id, _public(resolved), _settings(request))
    return {**_public(resolved), "webhook_delivered": delivered}


async def _stored_id(request: Request, user: str, request_id: str) -> str:
    """A request is its thread: one made through the threads API is stored under the thread's owner-scoped key
    (``loom.threads``), one made elsewhere (the CLI, a test) under the id itself."""
    key = thread_key(user, request_id)
    found = await _in_store(request, lambda store: store.get_request(user, key))
    return key if found is not None else request_id


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """The request as its owner knows it: under the thread id they chose, never the key."""
    return {**row, "request_id": public_thread_id(row["request_id"])}


async def _served_thread(services: Services | None, user: str, request_id: str) -> ThreadRow | None:
    """The server's thread for this request, if it ran through the threads API."""
    if services is None:
        return None
    thread = await threads.by_key(services.sessions, request_id)
    if thread is None or thread.owner != user or thread.graph_id is None:
        return None
    return thread


async def _resolve_in_graph(services: Services, thread: ThreadRow, resolved: dict[str, Any]) -> None:
    """Sends the resolution to the graph's ``resolve`` node, so the checkpointed request agrees with the table."""
    graph = services.graphs[thread.graph_id or ""]
    if "resolve" not in graph.nodes:
        return
    resolution = Resolution(summary=resolved["resolution_summary"], resolved_at=resolved["resolved_at"])
    config: RunnableConfig = {"configurable": {"thread_id": thread.thread_id}}
    await graph.ainvoke(
        Command(goto="resolve", update={"resolution": resolution}), config, context=RunContext(user_id=thread.owner)
    )


@router.get("/analytics")
async def analytics(request: Request, user: CurrentUser) -> dict[str, Any]:
    """Metrics over the caller's support requests: totals by status, category and priority, mean first-response
    time, escalation rate and approval decisions."""
    return await _in_store(request, lambda store: store.analytics(user))
