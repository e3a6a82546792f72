"""``/metrics``: this process's Prometheus metrics (``server.observability.metrics``); ``LOOM_METRICS=false``: off."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from server.observability.metrics import exposition

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """This process's Prometheus metrics in the text exposition format; shared gauges (queue depth, threads
    waiting for a human) are read from the database. Absent with ``LOOM_METRICS=false``."""
    return Response(await exposition(request.app.state.services.sessions), media_type=CONTENT_TYPE_LATEST)
