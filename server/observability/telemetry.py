"""Traces: one OpenTelemetry trace per run, from the HTTP request to each model and tool call.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: then :func:`tracer` is None and every hook returns at
once, so a deployment without a collector pays a branch per run. On, spans go to the collector in
batches from a background thread (OTLP/HTTP; the exporter reads the other ``OTEL_*`` variables itself).

A run crosses processes as a row, so its trace does too: the API stores the W3C ``traceparent`` of the
request's span in the run's ``kwargs`` and the worker that claims the run continues that trace with a
``run.queued`` span (creation to claim) and a ``run.attempt`` span, under which the graph's callback
handler (``server.observability.callbacks``) opens node, model and tool spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from langchain_core.tracers.langchain import LangChainTracer
from langsmith import env
from langsmith.utils import tracing_is_enabled
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from loom.settings import Settings
from loom.threads import public_thread_id

_provider: TracerProvider | None = None
_propagator = TraceContextTextMapPropagator()


def setup_tracing(settings: Settings, role: str) -> None:
    """Once per process: a tracer provider exporting to the configured collector, if there is one."""
    global _provider
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint or _provider is not None:
        return
    resource = Resource.create({"service.name": "loom", "loom.role": role, "process.pid": os.getpid()})
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))


def flush_tracing() -> None:
    """Send what is buffered (at shutdown; blocking: call it off the event loop)."""
    if _provider is not None:
        _provider.force_flush()


async def warm_langsmith() -> None:
    """LangSmith (its own ``LANGSMITH_*`` variables) builds its client on first use, reading files: off the loop."""
    if tracing_is_enabled():
        await asyncio.to_thread(_build_langsmith_tracer)


def _build_langsmith_tracer() -> None:
    """The client and the run metadata LangSmith caches (platform, git shas) are built here, not in a run."""
    LangChainTracer()
    env.get_runtime_environment()
    env.get_langchain_env_var_metadata()
    env.get_release_shas()


def tracer() -> Tracer | None:
    return _provider.get_tracer("loom") if _provider is not None else None


def traceparent() -> dict[str, str]:
    """The current span as W3C trace context, to store with a run ({} when tracing is off)."""
    carrier: dict[str, str] = {}
    if _provider is not None:
        _propagator.inject(carrier)
    return carrier


def run_attributes(run: Any) -> dict[str, Any]:
    """What identifies a run on every span: ids only, never content."""
    return {
        "loom.run_id": run.run_id,
        "loom.thread_id": public_thread_id(run.thread_id or ""),  # the id the client knows, not the owner key
        "loom.assistant_id": run.assistant_id,
        "loom.graph_id": run.graph_id,
        "loom.user_id": run.owner,
        "loom.attempt": run.attempt,
    }


@contextlib.contextmanager
def run_span(run: Any, worker_id: str) -> Iterator[Span | None]:
    """The worker's part of a run's trace: its wait in the queue, then this attempt (current while it runs)."""
    traced = tracer()
    if traced is None:
        yield None
        return
    parent = _propagator.extract({"traceparent": str(run.kwargs.get("traceparent", ""))})
    attributes = {**run_attributes(run), "loom.worker_id": worker_id}
    if run.attempt == 1:
        queued = traced.start_span("run.queued", parent, start_time=_ns(run.created_at), attributes=attributes)
        queued.end()
    with traced.start_as_current_span(f"run.attempt {run.graph_id}", parent, attributes=attributes) as span:
        yield span


def set_outcome(span: Span | None, status: str, error: dict[str, Any] | None) -> None:
    if span is None:
        return
    span.set_attribute("loom.status", status)
    if error:
        span.set_status(Status(StatusCode.ERROR, f"{error.get('error')}: {error.get('message')}"[:500]))


def current_trace_id() -> str | None:
    """The trace id of the current span, for log lines (None outside a trace)."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)
