"""Health and server information (LangGraph Studio reads ``/info``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.deps import Loom
from server.engine import queue
from server.responses import Ok

router = APIRouter(tags=["system"])


@router.get("/ok")
async def ok() -> Ok:
    """Health check: ``{"ok": true}`` while the process serves; needs no API key."""
    return {"ok": True}


@router.get("/info")
async def info(loom: Loom) -> dict[str, Any]:
    """The server's version, feature flags, served graph ids, run concurrency and queue (runs pending and running,
    capacity), as LangGraph Studio reads it; needs no API key."""
    return {
        "version": "0.1.0",
        "flags": {"assistants": True, "crons": True, "langsmith": False},
        "graphs": sorted(loom.graphs),
        "concurrency": loom.settings.server_concurrency,
        "queue": {**await queue.unfinished_counts(loom.sessions), "capacity": loom.manager.capacity()},
    }
