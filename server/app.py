"""The FastAPI application: opens the checkpointer and database, builds every graph, starts workers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from loom.persistence import open_checkpointer, open_store
from loom.settings import Settings, get_settings
from server.blocking import blocking_detection
from server.data.assistants import default_name, ensure_defaults
from server.db import open_database
from server.deps import Services, graph_description
from server.engine.bus import open_bus
from server.engine.manager import RunManager
from server.engine.thread_ttl import sweeping, thread_ttl
from server.errors import install_error_handlers
from server.middleware import BodyLimit
from server.observability import telemetry
from server.observability.metrics import HttpObserver
from server.openapi import install_openapi
from server.registry import auth_handlers, build_all, graph_specs, http_config
from server.routes import (
    artifacts,
    assistants,
    crons,
    datasets,
    feedback,
    mcp,
    metrics,
    runs,
    store,
    support,
    system,
    tasks,
    threads,
    usage,
)
from server.routes.docs import install_docs
from server.store_config import store_options

log = logging.getLogger("loom.server")
API_DESCRIPTION = (
    "Loom serves LangGraph graphs over the Agent Server API that langgraph-sdk and LangGraph Studio speak: "
    "assistants, threads with their checkpointed state and history, runs (background, streamed as SSE or NDJSON, "
    "or waited for), crons, the per-user store, and Loom's own tasks, support, usage and evaluation routes. "
    "Send an API key as `Authorization: Bearer <key>` or `x-api-key` when the server has keys. Every error is "
    "JSON: `{detail, code}`."
)
LOCAL_CORS: dict[str, Any] = {
    "allow_origins": ["*"],
    "allow_methods": ["*"],
    "allow_headers": ["*"],
    "allow_private_network": True,  # a hosted UI calling a server on localhost
    "expose_headers": ["content-location", "location", "x-pagination-total", "x-pagination-next"],
}
"""As ``langgraph dev``: browser clients on any origin may call a local server; ``http.cors`` replaces it."""


@asynccontextmanager
async def open_services(settings: Settings, claim: bool = True) -> AsyncIterator[Services]:
    """The checkpointer, store, database, every graph and a started run manager, closed in that order's reverse.

    The server's and the CLI's: both admit, execute and record runs through this one engine. ``claim=False``
    (the CLI) executes only the runs this process creates, never runs other processes queued.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with (
        open_checkpointer(settings) as checkpointer,
        open_store(settings, **await asyncio.to_thread(store_options, settings)) as store,
        contextlib.AsyncExitStack() as factories,
    ):
        engine, sessions = await open_database(settings.resolved_database_url(), settings.sqlite_synchronous)
        specs = graph_specs()
        graphs = await build_all(specs, checkpointer, store, factories)
        per_run = {
            graph_id: functools.partial(specs[graph_id].build, checkpointer, store, target=factory)
            for graph_id in graphs
            if (factory := specs[graph_id].run_factory()) is not None
        }
        manager = RunManager(settings, sessions, graphs, checkpointer, open_bus(settings), per_run)
        names = {gid: (default_name(gid, graph), graph_description(gid)) for gid, graph in graphs.items()}
        await ensure_defaults(sessions, names)
        await telemetry.warm_langsmith()
        await manager.start(claim)
        try:
            yield Services(settings, sessions, graphs, checkpointer, manager, store)
        finally:
            await manager.stop()
            await engine.dispose()
            await asyncio.to_thread(telemetry.flush_tracing)


def create_app(settings: Settings | None = None, api: bool = True) -> FastAPI:
    """The HTTP API; ``api=False`` is a worker process, answering only health and info."""
    settings = settings or get_settings()
    serves_mcp = api and not http_config().get("disable_mcp")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ttl = await asyncio.to_thread(thread_ttl)  # a bad checkpointer.ttl stops every process at start
        async with (
            open_services(settings) as services,
            mcp.serving(app) if serves_mcp else contextlib.nullcontext(),
        ):
            app.state.services = services
            if not settings.api_keys and app.state.auth is None:
                log.warning("no API keys configured: serving as the single local user 'demo'")
            async with sweeping(
                ttl if settings.run_workers else None, settings, services.sessions, services.checkpointer
            ):
                with blocking_detection(settings.detect_blocking):
                    yield

    app = FastAPI(
        title="Loom", version="0.1.0", lifespan=lifespan, description=API_DESCRIPTION, docs_url=None, redoc_url=None
    )
    install_docs(app)  # from installed files, not a CDN: they work offline
    mimetypes.init()  # serving those files reads the system's MIME tables once: now, not on the event loop
    app.state.settings = settings
    app.state.auth = auth_handlers()  # None: the built-in API keys (server/auth.py)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, read_timeout_s=settings.body_read_timeout_s)
    app.add_middleware(CORSMiddleware, **(http_config().get("cors") or LOCAL_CORS))
    telemetry.setup_tracing(settings, "api" if api else "worker")
    if settings.metrics or telemetry.tracer() is not None:
        app.add_middleware(HttpObserver)  # outermost: sees every answer, the edge's 413/408 too
    install_error_handlers(app)
    install_openapi(app)
    routes = (system, assistants, threads, usage, crons, runs, feedback, datasets, store, tasks, artifacts, support)
    modules = (*routes, *([mcp] if serves_mcp else [])) if api else (system,)
    if settings.metrics:
        app.include_router(metrics.router)
    for module in modules:
        app.include_router(module.router)
    return app
