"""Log lines are written by a thread of their own, so a slow stderr never stalls the event loop."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from loom.settings import Settings
from server.observability.logs import BoundedQueueHandler, configure_logging


class StalledStream:
    """A stderr whose reader has stopped (a full pipe): each write waits until ``resume`` is set."""

    def __init__(self) -> None:
        self.resume = threading.Event()
        self.lines: list[str] = []
        self.writers: set[int] = set()

    def write(self, text: str) -> None:
        self.resume.wait(timeout=30)
        self.writers.add(threading.get_ident())
        self.lines.append(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_logging_returns_while_stderr_is_stalled_and_every_line_is_written_after(
    loom_env: Settings, monkeypatch: pytest.MonkeyPatch, root_handlers: None
) -> None:
    stream = StalledStream()
    monkeypatch.setattr(sys, "stderr", stream)
    writer = configure_logging(loom_env)
    atexit.unregister(writer.stop)  # stopped here, not again at exit
    for index in range(3):
        logging.getLogger("loom.test").warning("line %d", index)  # written here, each would wait 30 s first
    assert stream.lines == [], "nothing written yet: the writer thread is stalled, the caller was not"
    stream.resume.set()
    writer.stop()  # writes what is queued
    assert [line.split("loom.test: ")[-1].strip() for line in stream.lines] == ["line 0", "line 1", "line 2"]
    assert threading.get_ident() not in stream.writers


def test_lines_beyond_the_queue_are_dropped_and_counted_then_reported() -> None:
    handler = BoundedQueueHandler(2)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("loom.test.bounded")
    log.propagate, log.handlers = False, [handler]
    for index in range(5):
        log.warning("line %d", index)
    assert handler.dropped == 3
    queued = [handler.queue.get_nowait().getMessage() for _ in range(2)]
    assert queued == ["WARNING line 0", "WARNING line 1"]
    log.warning("line 5")  # the writer caught up: the loss is reported before the next line
    reported = [handler.queue.get_nowait().getMessage() for _ in range(2)]
    assert reported == ["WARNING 3 log lines dropped: the writer fell behind", "WARNING line 5"]
    assert handler.dropped == 0
