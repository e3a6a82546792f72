"""Artifacts (charts, images) a thread's tools wrote, served to the thread's owner only."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.auth import CurrentUser
from server.deps import Loom, owned_thread
from server.errors import not_found
from services.paths import inside, safe_id

router = APIRouter(tags=["artifacts"])


@router.get("/threads/{thread_id}/artifacts/{name}")
async def artifact(thread_id: str, name: str, loom: Loom, user: CurrentUser) -> FileResponse:
    async with loom.sessions() as session:
        await owned_thread(session, thread_id, user)
    try:
        path = inside(loom.settings.artifacts_dir / safe_id(thread_id), name)
    except PermissionError:
        raise not_found("artifact", name) from None
    if not path.is_file():
        raise not_found("artifact", name)
    return FileResponse(path)
