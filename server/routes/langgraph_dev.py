"""What ``langgraph dev`` serves beside its own routes (``http.app`` in ``langgraph.json``): the artifact links.

Replies and tool results name a chart or image by ``/threads/<id>/artifacts/<name>``, a route of Loom's own
server (``server/routes/artifacts.py``) that langgraph-api lacks, so under ``langgraph dev`` the links were 404.
``langgraph dev`` has no users of Loom's: a run there acts for ``RunContext``'s user (``demo``) unless its
``context`` names another, and these links serve that default user's files. Loom's own server does not mount
this app: it answers the same path for each caller.
"""

from __future__ import annotations

import asyncio
import mimetypes

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from loom.settings import get_settings
from services.paths import artifact_file
from state.common import RunContext


async def artifact(request: Request) -> Response:
    """The file, by bare name, from the default user's folder for the thread; a JSON 404 otherwise."""
    thread_id, name = request.path_params["thread_id"], request.path_params["name"]
    try:
        path = await asyncio.to_thread(artifact_file, get_settings(), RunContext().user_id, thread_id, name)
    except FileNotFoundError:
        return JSONResponse({"detail": f"artifact {name!r} not found", "code": "artifact_not_found"}, 404)
    media_type = await asyncio.to_thread(lambda: mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    return FileResponse(path, media_type=media_type)


app = Starlette(routes=[Route("/threads/{thread_id}/artifacts/{name}", artifact, methods=["GET"])])
