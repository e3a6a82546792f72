"""Logs: readable text by default, one JSON object per line with ``LOOM_LOG_FORMAT=json``.

Every line carries the ids of the run it was written in (run, thread, user, graph, set by the run
manager for the run's task) and the current trace id, so a log line leads to its trace. Configured
secrets (API keys, provider keys) and anything shaped like a bearer token or an ``sk-`` key are
blanked in the final text, whatever logged them: a key can reach a log through an exception message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from loom.settings import Settings
from server import telemetry

RUN_IDS: ContextVar[dict[str, str] | None] = ContextVar("loom_log_ids", default=None)
SECRET_SHAPES = re.compile(r"(?i)(bearer\s+)[^\s\"',]+|\bsk-[A-Za-z0-9_\-]{6,}")
REDACTED = "[redacted]"
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


def configure_logging(settings: Settings) -> None:
    """The process's one log handler (stderr), uvicorn's loggers included (they propagate to it)."""
    redact = Redactor(settings.secrets())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if settings.log_format == "json" else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
