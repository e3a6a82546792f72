"""Logs: readable text by default, one JSON object per line with ``LOOM_LOG_FORMAT=json``.

Every line carries the ids of the run it was written in (run, thread, user, graph, set by the run
manager for the run's task) and the current trace id, so a log line leads to its trace. Configured
secrets (API keys, provider keys) and anything shaped like a bearer token or an ``sk-`` key are
blanked in the final text, whatever logged them: a key can reach a log through an exception message.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any

from loom.settings import Settings
from server.observability import telemetry

RUN_IDS: ContextVar[dict[str, str] | None] = ContextVar("loom_log_ids", default=None)
SECRET_SHAPES = re.compile(r"(?i)(bearer\s+)[^\s\"',]+|\bsk-[A-Za-z0-9_\-]{6,}")
REDACTED = "[redacted]"
LOG_QUEUE_SIZE = 10_000
"""Lines waiting for the writer thread before further ones are dropped (and counted)."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(ids)s"


@contextmanager
def run_ids(**ids: str | None) -> Iterator[None]:
    """Tags every log line written in this block (a run's task) with the given ids."""
    token = RUN_IDS.set({key: value for key, value in ids.items() if value})
    try:
        yield
    finally:
        RUN_IDS.reset(token)


class Redactor:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return SECRET_SHAPES.sub(lambda match: (match.group(1) or "") + REDACTED, text)


def scrub(error: dict[str, Any] | None, settings: Settings) -> dict[str, Any] | None:
    """A run's error as stored and shown to clients: a provider may quote the server's key in its message."""
    if error is None:
        return None
    redact = Redactor(settings.secrets())
    return {key: redact(value) if isinstance(value, str) else value for key, value in error.items()}


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        ids = {**(RUN_IDS.get() or {}), "trace_id": telemetry.current_trace_id()}
        record.ids = "".join(f" {key}={value}" for key, value in ids.items() if value)
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **(RUN_IDS.get() or {}),
        }
        if trace_id := telemetry.current_trace_id():
            line["trace_id"] = trace_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(line, default=str))


class BoundedQueueHandler(QueueHandler):
    """Formats a line where it is logged (the run's ids are that task's context variables) and hands the
    text to a thread that writes it: a write to a slow stderr (a full pipe to a log collector) never stalls
    the event loop. When that thread falls ``LOG_QUEUE_SIZE`` lines behind, further lines are dropped and
    counted, and the count is written once it catches up."""

    def __init__(self, size: int) -> None:
        self.lines: queue.Queue[Any] = queue.Queue(size)
        super().__init__(self.lines)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            if self.dropped:
                message = f"{self.dropped} log lines dropped: the writer fell behind"
                note = {"name": "loom.logs", "levelno": logging.WARNING, "levelname": "WARNING", "msg": message}
                self.queue.put_nowait(self.prepare(logging.makeLogRecord(note)))
                self.dropped = 0
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class LogWriter(QueueListener):
    """The thread that writes queued lines to stderr."""

    def __init__(self, lines: queue.Queue[Any], handler: logging.Handler) -> None:
        super().__init__(lines, handler)
        self.lines = lines

    def enqueue_sentinel(self) -> None:
        self.lines.put(None)  # the end mark; at exit the queue may be full: wait for room instead of failing


def configure_logging(settings: Settings) -> LogWriter:
    """The process's one log handler (stderr, written off the event loop), uvicorn's loggers included.

    Answers the writer thread; it is stopped, with what is still queued written, when the process exits.
    """
    redact = Redactor(settings.secrets())
    handler = BoundedQueueHandler(LOG_QUEUE_SIZE)
    handler.setFormatter(JsonFormatter(redact) if settings.log_format == "json" else TextFormatter(redact))
    writer = LogWriter(handler.lines, logging.StreamHandler(sys.stderr))
    writer.start()
    atexit.register(writer.stop)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return writer
