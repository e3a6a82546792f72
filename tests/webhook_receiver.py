"""A real HTTP server on 127.0.0.1 that records webhook calls, for notification tests.

It can answer the first ``fail_first`` calls with ``fail_status`` to exercise retries. Calls are
recorded before the response is sent, so once the sender has its answer the call is visible here.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.local_http import LocalHTTPServer, QuietHandler


class WebhookReceiver(LocalHTTPServer):
    path = "/hook"

    def __init__(self, fail_first: int = 0, fail_status: int = 503) -> None:
        self.calls: list[dict[str, Any]] = []
        self.attempts = 0
        self.fail_first, self.fail_status = fail_first, fail_status
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"null")
                with receiver._lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                    if not failing:
                        receiver.calls.append({"body": body, "headers": dict(self.headers)})
                self.send_response(receiver.fail_status if failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

        super().__init__(Handler)

    def events(self) -> list[str]:
        return [call["body"]["event"] for call in self.calls]
