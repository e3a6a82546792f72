"""Artifacts (charts, images) a thread's tools wrote, served to the thread's owner only."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.auth import CurrentUser
from server.deps import Loom, owned_thread
from server.errors import not_found
from services.paths import artifact_file

router = APIRouter(tags=["artifacts"])


@router.get(
    "/threads/{thread_id}/artifacts/{name}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "application/octet-stream": {}}, "description": "The file."}},
)
async def artifact(thread_id: str, name: str, loom: Loom, user: CurrentUser) -> FileResponse:
    """The folder is keyed by owner and thread, and the name must be a bare file name in it."""
    async with loom.sessions() as session:
        await owned_thread(session, thread_id, user)
    try:
        path = await asyncio.to_thread(artifact_file, loom.settings, user, thread_id, name)
    except FileNotFoundError:
        raise not_found("artifact", name) from None
    return FileResponse(path)
