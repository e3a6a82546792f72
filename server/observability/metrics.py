"""Prometheus metrics, served at ``/metrics`` (``server.routes.metrics``) by API and worker processes alike
(each process reports its own).

Counters and histograms are recorded where things happen: HTTP requests in :class:`HttpObserver`, runs
in the run manager, nodes, model and tool calls in the graph callback handler (``server.observability.callbacks``).
Queue depth and threads waiting for a human are read from the database when scraped, so every process
reports the same shared numbers for them. ``LOOM_METRICS=false`` turns all of it off.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.db import ThreadRow
from server.engine import queue
from server.observability import telemetry

disable_created_metrics()  # type: ignore[no-untyped-call] # no *_created series: half the output, no use to a dashboard
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

RUNS = Counter("loom_runs_total", "Runs finished, by graph and final status.", ["graph", "status"])
RUN_SECONDS = Histogram(
    "loom_run_duration_seconds", "Run attempt wall time, claim to end.", ["graph", "status"], buckets=LATENCY_BUCKETS
)
QUEUE_WAIT = Histogram(
    "loom_queue_wait_seconds", "Time from a run's creation to its first claim.", ["graph"], buckets=LATENCY_BUCKETS
)
QUEUE_DEPTH = Gauge("loom_queue_depth", "Runs accepted and unfinished (shared database), by status.", ["status"])
INTERRUPTED = Gauge("loom_threads_interrupted", "Threads waiting for a human (an interrupt), shared database.")
NODE_SECONDS = Histogram(
    "loom_node_duration_seconds", "Graph node wall time.", ["graph", "node", "outcome"], buckets=LATENCY_BUCKETS
)
NODE_RETRIES = Counter("loom_node_retries_total", "Node attempts after the first (RetryPolicy).", ["graph", "node"])
MODEL_CALLS = Counter("loom_model_calls_total", "Chat model calls.", ["model", "node", "outcome"])
MODEL_SECONDS = Histogram("loom_model_duration_seconds", "Chat model call latency.", ["model"], buckets=LATENCY_BUCKETS)
MODEL_TOKENS = Counter(
    "loom_model_tokens_total", "Model tokens, by model, calling node and type.", ["model", "node", "type"]
)
MODEL_COST = Counter(
    "loom_model_cost_usd_total",
    "Model spend in USD by provider:model and node (unpriced models left out).",
    ["model", "node"],
)
TOOL_CALLS = Counter(
    "loom_tool_calls_total", "Tool calls, by tool, permission level and outcome.", ["tool", "permission", "outcome"]
)
ACTIVE_STREAMS = Gauge("loom_active_streams", "Open SSE / NDJSON responses in this process.")
HTTP_REQUESTS = Counter("loom_http_requests_total", "HTTP requests by route template.", ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "loom_http_request_duration_seconds",
    "Time to the end of the response.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
STREAMING_TYPES = (b"text/event-stream", b"application/x-ndjson")


async def exposition(sessions: async_sessionmaker[AsyncSession]) -> bytes:
    """The Prometheus text format for ``/metrics``; the shared gauges are read from the database first."""
    for status, count in (await queue.unfinished_counts(sessions)).items():
        QUEUE_DEPTH.labels(status).set(count)
    async with sessions() as session:
        waiting = await session.scalar(select(func.count()).where(ThreadRow.status == "interrupted"))
    INTERRUPTED.set(waiting or 0)
    return await asyncio.to_thread(generate_latest)  # the process collector reads /proc


def run_finished(graph: str, status: str, seconds: float) -> None:
    RUNS.labels(graph, status).inc()
    RUN_SECONDS.labels(graph, status).observe(seconds)


class HttpObserver:
    """Counts and times every request by route template (never the raw path), and opens its span.

    The span is current while the route runs, so a run created by the request carries it as parent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, streaming = time.perf_counter(), 500, False
        traced = telemetry.tracer()
        span = traced.start_span(scope["method"], kind=SpanKind.SERVER) if traced is not None else None

        async def observed(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                streaming = content_type.startswith(STREAMING_TYPES)
                if streaming:
                    ACTIVE_STREAMS.inc()
            await send(message)

        token = context.attach(trace.set_span_in_context(span)) if span else None
        try:
            await self.app(scope, receive, observed)
        finally:
            if token is not None:
                context.detach(token)
            if streaming:
                ACTIVE_STREAMS.dec()
            route = self._route(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - started)
            if span is not None:
                _end_http_span(span, scope, route, status)

    def _route(self, scope: Scope) -> str:
        """The matched route's template; a copied scope (text/plain bodies) is matched again; else ``unmatched``."""
        route = scope.get("route")
        if route is None:
            for candidate in scope["app"].router.routes if "app" in scope else ():
                if candidate.matches(scope)[0] == Match.FULL:
                    route = candidate
                    break
        return str(getattr(route, "path", "unmatched"))


def _end_http_span(span: Any, scope: Scope, route: str, status: int) -> None:
    span.update_name(f"{scope['method']} {route}")
    span.set_attributes(
        {"http.request.method": scope["method"], "http.route": route, "http.response.status_code": status}
    )
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
