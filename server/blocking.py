"""Blocking calls on the event loop fail loudly, as under ``langgraph dev`` (the ``blockbuster`` library).

One synchronous file scan in an async node stalls every run the server is serving, so with
``LOOM_DETECT_BLOCKING`` on (the test suite turns it on) such a call raises ``BlockingError`` in the run
instead. Detection is limited to calls made from Loom's own packages: what a library does on its own
loop is the library's business, what Loom's nodes and routes do is ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from blockbuster import BlockBuster

LOOM_PACKAGES = ["graphs", "nodes", "services", "state", "server", "loom"]
HARNESS = ["loom.processes", "loom.cli", "loom.evals"]
"""Entry points that start processes or run evaluations for tests, benchmarks and the terminal: not served code."""


ALLOWED = [("loom/settings.py", ["get_settings"])]
"""(file, functions) that may block: settings read ``.env`` once per process, then come from a cache."""


def loom_blockbuster() -> BlockBuster:
    """A detector for blocking calls made, on a running event loop, from Loom's packages."""
    detector = BlockBuster(scanned_modules=LOOM_PACKAGES, excluded_modules=HARNESS)
    for function in detector.functions.values():
        for filename, functions in ALLOWED:
            function.can_block_in(filename, functions)
    return detector


@contextmanager
def blocking_detection(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    detector = loom_blockbuster()
    detector.activate()
    try:
        yield
    finally:
        detector.deactivate()
