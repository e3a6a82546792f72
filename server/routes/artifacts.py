"""Artifacts (charts, images) a thread's tools wrote, served to the thread's owner only."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from loom.settings import Settings
from server.auth import CurrentCaller
from server.deps import Loom, caller_thread
from server.errors import not_found
from services.paths import artifact_file

router = APIRouter(tags=["artifacts"])


@router.get(
    "/threads/{thread_id}/artifacts/{name}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "application/octet-stream": {}}, "description": "The file."}},
)
async def artifact(thread_id: str, name: str, loom: Loom, caller: CurrentCaller) -> FileResponse:
    """A file (chart, image) the thread's tools wrote, with its media type. The folder is keyed by owner and
    thread, and the name must be a bare file name in it; 404 for an unknown thread or file."""
    await caller_thread(loom, thread_id, caller, "read")
    try:
        path, media_type = await asyncio.to_thread(_file_and_type, loom.settings, caller.identity, thread_id, name)
    except FileNotFoundError:
        raise not_found("artifact", name) from None
    return FileResponse(path, media_type=media_type)


def _file_and_type(settings: Settings, user: str, thread_id: str, name: str) -> tuple[Path, str]:
    """The artifact and its media type. Resolving, stat-ing and the first media-type lookup (which reads the
    system's mime tables) touch the disk, so this runs off the event loop."""
    path = artifact_file(settings, user, thread_id, name)
    return path, mimetypes.guess_type(path.name)[0] or "application/octet-stream"
