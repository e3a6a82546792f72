"""ASGI middleware at the edge: body size (413), body read time (408), strict JSON (no NaN or Infinity,
no float overflow, integers within 64 bits, no unpaired surrogates), and JSON sent as text/plain (LangGraph
Studio does that).
It runs before any route parses a body."""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A ``\\uD800``–``\\uDFFF`` escape: the only way JSON text can carry a surrogate, paired or not."""
INT64 = 2**63
"""JSON integers must fit in signed 64 bits: the stores (orjson), the checkpointer (msgpack) and SQL refuse more."""
MAX_JSON_DEPTH = 100
"""Deeper bodies are a 400; no real request nests this far, and pydantic and the stores stop near 255."""


class NonStandardJson(ValueError):
    """A token Python's json module accepts but JSON (RFC 8259) or Loom's storage does not."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class BodyLimit:
    """Reads each request body whole, bounded in size and time, and checks JSON bodies are strict JSON."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout_s: float = 10.0) -> None:
        self.app, self.max_bytes, self.read_timeout_s = app, max_bytes, read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            return await _error(send, 413, "body_too_large", f"request body exceeds {self.max_bytes} bytes")
        content_type = headers.get(b"content-type", b"")
        if content_type.startswith(b"text/plain"):
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"content-type"]}
            scope["headers"].append((b"content-type", b"application/json"))
            content_type = b"application/json"
        try:
            async with asyncio.timeout(self.read_timeout_s):  # a half-sent body must not hold a connection
                body = await self._read_limited(receive)
        except TimeoutError:
            message = f"request body not received within {self.read_timeout_s:g} s"
            return await _error(send, 408, "body_timeout", message, close=True)
        if body is None:
            return await _error(send, 413, "body_too_large", f"request body exceeds {self.max_bytes} bytes")
        if body and b"json" in content_type:
            try:
                check_strict_json(body)
            except NonStandardJson as exc:
                return await _error(send, exc.status, exc.code, str(exc))
        await self.app(scope, _replay(body, receive), send)

    async def _read_limited(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return None
            more = message.get("more_body", False)
        return b"".join(chunks)


def check_strict_json(body: bytes) -> None:
    """Raises :class:`NonStandardJson` for NaN/Infinity, floats that overflow, integers beyond 64 bits, and
    nesting deeper than ``MAX_JSON_DEPTH`` (serialisers further in give up near 255 levels, with a 500).

    Malformed JSON passes through: the route answers it with its own 400 naming the problem.
    """
    try:
        parsed = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_int64)
    except NonStandardJson:
        raise
    except ValueError:  # not JSON at all (or not UTF-8): the route's parser reports it
        return
    except RecursionError as exc:  # deeper than Python's own parser goes
        raise _too_deep() from exc
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _nested_deeper_than(parsed, MAX_JSON_DEPTH):
        raise _too_deep()
    if SURROGATE_ESCAPE.search(body):  # rare: pay for the full check only then
        _refuse_unpaired_surrogates(parsed)


def _too_deep() -> NonStandardJson:
    return NonStandardJson(400, "malformed_json", f"request body nests arrays and objects deeper than {MAX_JSON_DEPTH}")


def _nested_deeper_than(parsed: Any, limit: int) -> bool:
    """Walked without recursion: the check must not fail the way it guards against."""
    pending: list[tuple[Any, int]] = [(parsed, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


def _refuse_unpaired_surrogates(parsed: Any) -> None:
    """An unpaired surrogate decodes to a str that no store, checkpointer or UTF-8 encoder accepts."""
    try:
        json.dumps(parsed, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise NonStandardJson(400, "malformed_json", "request body is not valid JSON text: unpaired surrogate") from exc


def _refuse_constant(token: str) -> Any:
    raise NonStandardJson(400, "malformed_json", f"request body is not valid JSON: {token} is not a JSON value")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise NonStandardJson(422, "invalid_number", f"number {token[:40]} is out of range")
    return value


def _int64(token: str) -> int:
    if len(token) > 20 or not -INT64 <= int(token) < INT64:
        raise NonStandardJson(422, "invalid_number", f"integer {token[:40]} does not fit in 64 bits")
    return int(token)


async def _error(send: Send, status: int, code: str, message: str, close: bool = False) -> None:
    headers = [(b"content-type", b"application/json")] + ([(b"connection", b"close")] if close else [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"detail": message, "code": code}).encode()})


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body once, then the real channel (routes still see the client disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
