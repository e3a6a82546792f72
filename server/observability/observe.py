"""What the run manager calls to observe a run: one attempt's span, log ids and metrics, in one place."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from loom.settings import Settings
from loom.threads import public_thread_id
from server.db import RunRow, now
from server.engine.attempt import RunAttempt
from server.observability import logs, metrics, telemetry
from server.observability.callbacks import RunObserver


@contextmanager
def attempt(run: RunRow, worker_id: str, settings: Settings) -> Iterator[None]:
    """Around one attempt of a run: its queue wait, its trace span (current), its ids on every log line."""
    if settings.metrics and run.attempt == 1:
        waited = (now() - run.created_at).total_seconds()
        metrics.QUEUE_WAIT.labels(run.graph_id).observe(max(waited, 0.0))
    thread_id = public_thread_id(run.thread_id) if run.thread_id else None
    ids = {"run_id": run.run_id, "thread_id": thread_id, "user_id": run.owner, "graph_id": run.graph_id}
    with telemetry.run_span(run, worker_id), logs.run_ids(**ids):
        yield


def callbacks(attempt: RunAttempt, settings: Settings) -> list[RunObserver]:
    """The graph callback handler for this run's config, or none when neither tracing nor metrics is on."""
    tracer = telemetry.tracer()
    if tracer is None and not settings.metrics:
        return []
    root = trace.get_current_span() if tracer is not None else None
    thread_id = public_thread_id(attempt.thread_id or "")
    ids = {"loom.run_id": attempt.run_id, "loom.thread_id": thread_id, "loom.user_id": attempt.owner}
    return [RunObserver(attempt.graph_id, tracer, root, ids, content=settings.trace_content, measure=settings.metrics)]


def finished(attempt: RunAttempt, status: str, error: dict[str, Any] | None, settings: Settings) -> None:
    """The run's outcome on its span and in the run counters (called once its row says so)."""
    if telemetry.tracer() is not None:
        telemetry.set_outcome(trace.get_current_span(), status, error)
    if settings.metrics:
        metrics.run_finished(attempt.graph_id, status, time.monotonic() - attempt.started)
