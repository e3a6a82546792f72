"""``runtime.context`` for graphs that bring their own context schema.

Loom's graphs take ``RunContext``, whose user comes from authentication (``server.runs.run_context``).
Any other graph (a project served from its own ``langgraph.json``) gets the request's ``context``
validated against its ``context_schema``: a mismatch is a 422 naming the field when the run is created,
never a run that fails inside a node.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from server.errors import ApiError
from state.common import RunContext


def own_context_schema(graph: Any) -> Any:
    """The graph's context schema, or None when it is Loom's ``RunContext`` or absent."""
    schema = getattr(graph, "context_schema", None)
    return None if schema in (None, RunContext) else schema


def validate_context(graph: Any, requested: dict[str, Any] | None) -> Any:
    """The request's context as the graph's own schema; 422 naming the field when it does not fit."""
    schema = own_context_schema(graph)
    if schema is None:
        return None
    try:
        return TypeAdapter(schema).validate_python(requested or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in ("context", *first["loc"]))
        raise ApiError(422, "invalid_context", f"{where}: {first['msg']}") from exc
