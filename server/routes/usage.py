"""``GET /threads/{id}/usage``: what a thread's runs spent, by node and by model (``server.engine.usage``)."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter

from server.auth import CurrentCaller
from server.data import threads
from server.deps import Loom
from server.engine.usage import merge
from server.responses import ThreadUsage

router = APIRouter(prefix="/threads", tags=["threads"])


@router.get("/{thread_id}/usage")
async def thread_usage(thread_id: str, loom: Loom, caller: CurrentCaller) -> ThreadUsage:
    """What the thread's runs spent: tokens, model calls and USD, in total, by node and by model, and how many
    runs recorded usage (a run records it when it ends). 404 for a thread the caller cannot see."""
    filters = await caller.authorize("threads", "read", {"thread_id": thread_id})
    recorded = await threads.run_usages(loom.sessions, thread_id, caller.identity, filters)
    return cast(ThreadUsage, {"thread_id": thread_id, "runs": len(recorded), **merge(recorded)})
