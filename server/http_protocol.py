"""uvicorn's HTTP protocol with a deadline for each request's head.

uvicorn waits for a request line and headers for ever: a client that connects and sends nothing, or sends
its headers a byte at a time, holds a socket and a file descriptor as long as it likes (its keep-alive
timer only runs between a response and the next request's first byte). Enough such clients and the
server can no longer accept connections or open its databases. Here a request's head must be complete
within ``timeout_s`` of the connection opening or of the previous response, as nginx's
``client_header_timeout``; the body has its own limit (``server.middleware``).
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


class HeadDeadlineProtocol(HttpToolsProtocol):
    """Closes a connection whose next request's head is not in within ``timeout_s`` (a 408 if it began one)."""

    timeout_s = 10.0
    _deadline: TimerHandle | None = None
    _begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        self._begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._begun = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete:  # idle until the next request
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        if self._begun:
            body = b'{"detail": "request head not received within %g s", "code": "header_timeout"}' % self.timeout_s
            self.transport.write(TIMED_OUT % (len(body), body))
        self.transport.close()


def head_deadline_protocol(timeout_s: float) -> type[HeadDeadlineProtocol]:
    """The protocol class uvicorn instantiates per connection, with this server's deadline."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"timeout_s": timeout_s})
