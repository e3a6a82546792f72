"""Artifacts (charts, images) a thread's tools wrote, served to the thread's owner only."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

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
    found = await asyncio.to_thread(_existing_file, loom.settings.artifacts_dir / safe_id(thread_id), name)
    if found is None:
        raise not_found("artifact", name)
    path, media_type = found
    return FileResponse(path, media_type=media_type)


def _existing_file(folder: Path, name: str) -> tuple[Path, str] | None:
    """The file ``name`` inside ``folder`` and its media type, or None.

    Resolving, stat-ing and the first media-type lookup (which reads the system's mime tables) touch the
    disk, so this runs off the event loop.
    """
    try:
        path = inside(folder, name)
    except PermissionError:
        return None
    if not path.is_file():
        return None
    return path, mimetypes.guess_type(path.name)[0] or "application/octet-stream"
