"""Real HTTP servers that stand in for an OpenTelemetry collector (OTLP/HTTP protobuf) and LangSmith.

Both record what they are sent; :meth:`Recorder.wait_for` blocks on a condition the handler signals
(no sleeps), with a deadline so a broken exporter fails the test instead of hanging it.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.local_http import LocalHTTPServer, QuietHandler

DEADLINE_S = 60.0


@dataclass
class Span:
    """One received span, flattened: ids as hex, attributes as plain values, its process's resource."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


class Recorder(LocalHTTPServer):
    """A threaded HTTP server that records each POST (path, body) and answers ``status`` with ``answer``."""

    def __init__(self, status: int = 200, answer: bytes = b"{}") -> None:
        self.posts: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        recorder = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                with recorder._changed:
                    recorder.posts.append((self.path, body))
                    recorder._changed.notify_all()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:  # LangSmith's client asks for /info first
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        super().__init__(Handler)

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        """Blocks (call it off the event loop) until ``done()`` holds after some POST."""
        with self._changed:
            if not self._changed.wait_for(done, timeout=DEADLINE_S):
                raise TimeoutError(f"never received {what}; got {len(self.posts)} posts")


class OtlpCollector(Recorder):
    """Decodes each OTLP/HTTP ``ExportTraceServiceRequest`` into :class:`Span` records."""

    def spans(self) -> list[Span]:
        found: list[Span] = []
        for path, body in list(self.posts):
            if path != "/v1/traces":
                continue
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    found.extend(
                        Span(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            _attributes(span.attributes),
                            resource,
                        )
                        for span in scope.spans
                    )
        return found


def _attributes(pairs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values
