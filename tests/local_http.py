"""The common part of the real HTTP stubs tests talk to (``collectors.py``, ``webhook_receiver.py``).

A ``ThreadingHTTPServer`` on 127.0.0.1 with a free port, served from a daemon thread while the
``with`` block runs, so a test sends real requests over a socket and shuts the server down after.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that does not print each request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalHTTPServer:
    """Serves ``handler`` on 127.0.0.1; :attr:`url` ends in ``path`` (the endpoint a sender is given)."""

    path = ""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
