"""The OpenAPI document says what the server really answers: Loom's error body and every status it can send.

FastAPI documents only ``200`` and its own ``422`` shape; Loom answers errors as ``{"detail", "code"}``
(``server/errors.py``) and the edge middleware can refuse any request (400, 408, 413). The fuzzing test
(``tests/server/test_fuzz.py``) checks every response against this document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, TypeAdapter

ERROR_REF = "#/components/schemas/ErrorBody"
EDGE = {400: "Malformed or non-standard JSON", 401: "Missing or wrong API key (or not authenticated by custom auth)",
        403: "Refused by the project's custom-auth handler", 408: "Body not received in time",
        413: "Body too large", 422: "A field is invalid (named in detail)"}  # fmt: skip
NDJSON = "application/x-ndjson"
SSE_EVENT = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
    "required": ["event", "data"],
    "description": "One event; data is JSON text. The last event is `end` with {status, interrupts, checkpoint}.",
}
STREAM_TYPES = {"text/event-stream": {"schema": SSE_EVENT}, NDJSON: {"schema": {"type": "string"}}}
UNGUARDED = {"/ok", "/info"}


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error: a human ``detail``, a machine ``code``; validation errors list every field."""

    model_config = ConfigDict(extra="allow")

    detail: str
    code: str
    errors: list[FieldError] | None = None


def statuses(path: str, method: str) -> dict[int, str]:
    """What one operation can answer besides success, from how the routes and the edge behave."""
    if path in UNGUARDED:
        return {}
    found = dict(EDGE)
    if "{" in path or method in ("post", "put", "patch", "delete") or path.startswith("/store"):
        found[404] = "Unknown id (another user's thread or run is unknown too)"
    if method != "get" or path.endswith(("/join", "/stream")):
        found[409] = "Conflicts with the thread's or run's state (named in code)"
    if method == "post" and ("/runs" in path or path.startswith("/tasks")):
        found[429] = "The run queue is full; retry after Retry-After seconds"
    return found


def describe_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds ``ErrorBody`` and the error statuses to every operation, and the media types of streams."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    modes: list[tuple[Any, Literal["serialization"], TypeAdapter[Any]]] = [
        (ErrorBody, "serialization", TypeAdapter(ErrorBody))
    ]
    _, definitions = TypeAdapter.json_schemas(modes, ref_template="#/components/schemas/{model}")
    components.update(definitions.get("$defs", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, description in statuses(path, method).items():
                if str(status) in responses:  # the route documents it (``/mcp``: the MCP SDK's own answers)
                    continue
                content = {"application/json": {"schema": {"$ref": ERROR_REF}}}
                responses[str(status)] = {"description": description, "content": content}
            _describe_success(path, method, responses)
    return schema


def _describe_success(path: str, method: str, responses: dict[str, Any]) -> None:
    if path.endswith("/stream"):
        responses["200"] = {"description": "Server-sent events, or NDJSON with Accept: application/x-ndjson",
                            "content": STREAM_TYPES}  # fmt: skip
    elif path == "/tasks/{task_id}/execute":
        responses["200"] = {"description": "NDJSON events", "content": {NDJSON: STREAM_TYPES[NDJSON]}}
    elif path.endswith("/cancel"):
        responses.pop("200", None)
        responses["202"] = {"description": "Cancellation requested"}
        responses["204"] = {"description": "Cancelled (wait=true)"}


def install_openapi(app: FastAPI) -> None:
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
