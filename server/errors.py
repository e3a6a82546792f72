"""Every error is JSON with a human message and a machine-readable code; bad input is never a 500."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sqlite3
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra


def not_found(kind: str, identifier: str) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"{kind} {identifier!r} not found")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"detail": message, "code": code, **extra}


def allowed_methods(request: Request) -> str:
    """Every method some route accepts at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


log = logging.getLogger("loom.server")
RETRY_AFTER_OUTAGE_S = "5"


def outage_errors() -> tuple[type[Exception], ...]:
    """What a database or Redis raises when it cannot be reached just now: the request was fine, try again."""
    kinds: list[type[Exception]] = [
        sqlalchemy.exc.OperationalError,  # connection refused or cut, SQLite's disk I/O errors
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,  # no pooled connection came free
        sqlite3.OperationalError,  # the SQLite checkpointer and store
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    ]
    for module, name in (("psycopg", "OperationalError"), ("psycopg_pool", "PoolTimeout")):  # the postgres extra
        with contextlib.suppress(ImportError):
            kinds.append(getattr(importlib.import_module(module), name))
    return tuple(kinds)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure as Loom's JSON error body (``{detail, code}``)."""

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        what = f"{type(exc).__name__}: {exc}"
        log.warning("%s %s: a backend is unavailable: %s", request.method, request.url.path, what)
        message = "a database or Redis is unreachable just now; retry later"
        return JSONResponse(error_body("unavailable", message), 503, headers={"Retry-After": RETRY_AFTER_OUTAGE_S})

    for kind in outage_errors():
        app.add_exception_handler(kind, unavailable)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        """A bug: JSON like every other error (Starlette logs the traceback); never the exception's text."""
        return JSONResponse(error_body("internal_error", "the server failed to answer this request"), 500)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, **exc.extra), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            return JSONResponse(error_body("malformed_json", "request body is not valid JSON"), 400)
        first = errors[0] if errors else {}
        field = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        message = f"{field or 'body'}: {first.get('msg', 'invalid')}"
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg")}
            for e in errors
        ]
        return JSONResponse(error_body("invalid_request", message, errors=fields), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)
