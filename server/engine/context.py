"""A run's ``context``, validated against the schema of the graph it is for.

Loom's graphs take ``RunContext``, whose user and grants come from the server (``server.engine.execution.run_context``);
the request's context is checked as ``RunContextBody`` (a name, permissions that may only narrow).
Any other graph (a project served from its own ``langgraph.json``) gets the request's ``context``
validated against its own ``context_schema``, less ``budget``, which Loom reads for every graph
(``server.engine.usage``). A mismatch is a 422 naming the field when the run is
created, never a run that fails inside a node. As langgraph-api, such a graph takes the request's
``config.configurable`` as its context when the request sends none (``configurable_as_context``).
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from pydantic import ValidationError
from typing_extensions import get_type_hints, is_typeddict

from server.errors import ApiError
from server.graph_schemas import adapter, pydantic_ready, typed_dict_like, unwrapped
from server.schemas import BudgetContext, RunContextBody, RunCreate
from state.common import RunContext


def own_context_schema(graph: Any) -> Any:
    """The graph's context schema, or None when it is Loom's ``RunContext`` or absent."""
    schema = getattr(graph, "context_schema", None)
    return None if schema in (None, RunContext) else schema


Body = TypeVar("Body", bound=RunCreate)


def configurable_as_context(graph: Any, body: Body) -> Body:
    """As langgraph-api: a graph with its own context schema runs with the request's ``config.configurable``
    (the keys its schema names) as its context when the request sends no ``context``; sending both is a 422.
    Loom's own graphs never take their context from ``configurable`` (their user is the caller)."""
    configurable = body.config.configurable if body.config is not None else None
    schema = own_context_schema(graph)
    if schema is None or not configurable:
        return body
    if body.context:
        raise ApiError(422, "invalid_request", "context: send context or config.configurable, not both")
    names = _field_names(schema)
    context = {key: value for key, value in configurable.items() if names is None or key in names}
    return body.model_copy(update={"context": context})


def validate_context(graph: Any, requested: dict[str, Any] | None) -> Any:
    """The request's context as the graph's own schema (None for Loom's graphs); 422 naming the field."""
    schema = own_context_schema(graph)
    if schema is None:
        _checked(RunContextBody, requested)
        return None
    requested = dict(requested or {})
    _checked(BudgetContext, {"budget": requested.pop("budget", None)})
    return _checked(_keys_optional(schema), requested)


@functools.lru_cache(maxsize=256)
def _keys_optional(schema: Any) -> Any:
    """A TypedDict schema with every key optional, the values still typed: LangGraph passes a TypedDict context
    through as given and never asks for its required keys (templates run without one), so neither does Loom.
    Dataclasses and pydantic models stay as they are: LangGraph builds them, so a missing field would fail."""
    if not is_typeddict(schema):
        return schema
    schema = pydantic_ready(schema)  # a typing.TypedDict (Python < 3.12) too
    hints = {name: unwrapped(hint) for name, hint in get_type_hints(schema, include_extras=True).items()}
    return typed_dict_like(schema, hints, total=False)


@functools.lru_cache(maxsize=256)
def _field_names(schema: Any) -> frozenset[str] | None:
    """The keys the schema's JSON Schema names, as langgraph-api filters a context; None (keep every key) when
    it names none or cannot be written as JSON Schema, as langgraph-api then keeps them."""
    try:
        properties = found.json_schema().get("properties") if (found := adapter(schema)) is not None else None
    except Exception:  # any type a project may declare: pydantic's errors vary
        return None
    return frozenset(properties) if properties else None


def _checked(schema: Any, requested: dict[str, Any] | None) -> Any:
    """``requested`` as ``schema`` (422 naming the field); as it is when pydantic cannot read ``schema``."""
    if (found := adapter(schema)) is None:
        return requested or {}
    try:
        return found.validate_python(requested or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in ("context", *first["loc"]))
        raise ApiError(422, "invalid_context", f"{where}: {first['msg']}") from exc
