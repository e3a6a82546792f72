"""``GET /threads/{id}/usage``: what a thread's runs spent, by node and by model (``server.engine.usage``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from server.auth import CurrentCaller
from server.db import RunRow
from server.deps import Loom, visible_thread
from server.engine.usage import merge

router = APIRouter(prefix="/threads", tags=["threads"])


@router.get("/{thread_id}/usage")
async def thread_usage(thread_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    async with loom.sessions() as session:
        thread = await visible_thread(session, thread_id, caller, "read")
        usages = (await session.scalars(select(RunRow.usage).where(RunRow.thread_id == thread.thread_id))).all()
    recorded = [usage for usage in usages if usage]
    return {"thread_id": thread_id, "runs": len(recorded), **merge(recorded)}
