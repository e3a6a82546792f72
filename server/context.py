"""A run's ``context``, validated against the schema of the graph it is for.

Loom's graphs take ``RunContext``, whose user and grants come from the server (``server.runs.run_context``);
the request's context is checked as ``RunContextBody`` (a name, permissions that may only narrow).
Any other graph (a project served from its own ``langgraph.json``) gets the request's ``context``
validated against its own ``context_schema``, less ``budget``, which Loom reads for every graph
(``server.usage``). A mismatch is a 422 naming the field when the run is
created, never a run that fails inside a node.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter, ValidationError

from server.errors import ApiError
from server.schemas import BudgetContext, RunContextBody
from state.common import RunContext


def own_context_schema(graph: Any) -> Any:
    """The graph's context schema, or None when it is Loom's ``RunContext`` or absent."""
    schema = getattr(graph, "context_schema", None)
    return None if schema in (None, RunContext) else schema


def validate_context(graph: Any, requested: dict[str, Any] | None) -> Any:
    """The request's context as the graph's own schema (None for Loom's graphs); 422 naming the field."""
    schema = own_context_schema(graph)
    if schema is None:
        _checked(RunContextBody, requested)
        return None
    requested = dict(requested or {})
    _checked(BudgetContext, {"budget": requested.pop("budget", None)})
    return _checked(schema, requested)


@functools.lru_cache(maxsize=256)
def _adapter(schema: Any) -> TypeAdapter[Any]:
    """One adapter per schema: building one costs more than the validation, and every run validates."""
    return TypeAdapter(schema)


def _checked(schema: Any, requested: dict[str, Any] | None) -> Any:
    try:
        return _adapter(schema).validate_python(requested or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in ("context", *first["loc"]))
        raise ApiError(422, "invalid_context", f"{where}: {first['msg']}") from exc
