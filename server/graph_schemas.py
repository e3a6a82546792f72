"""A served graph's types as JSON Schema and as validators, for any schema LangGraph itself accepts.

LangGraph takes a state, input, output or context schema that pydantic cannot read as it is: a
``typing.TypedDict`` on Python < 3.12 (pydantic asks for ``typing_extensions.TypedDict``). Such a type is
rebuilt here as a ``typing_extensions.TypedDict`` with the same name, keys and value types (nested ones
too), so its schema and its checks are the ones the project wrote. A schema Loom still cannot describe is
left out of ``/assistants/{id}/schemas`` (None) with a warning naming the graph, and its values go
unchecked, as langgraph-api does: never a 500.
"""

from __future__ import annotations

import copy
import functools
import logging
import types
import typing
from collections.abc import Callable
from dataclasses import is_dataclass
from inspect import isclass
from typing import Any, NotRequired, Required, get_args, get_origin

from pydantic import BaseModel, TypeAdapter
from typing_extensions import TypedDict, get_type_hints, is_typeddict

log = logging.getLogger("loom.server")
CONFIG_INTERNALS = ("__pregel_checkpointer", "__pregel_store", "checkpoint_id", "checkpoint_ns", "thread_id")


@functools.lru_cache(maxsize=256)
def adapter(schema: Any) -> TypeAdapter[Any] | None:
    """A validator for ``schema`` (once per schema: building one costs more than a validation); None, with one
    warning, when pydantic cannot read it even so: values of it then go to the graph unchecked."""
    try:
        return TypeAdapter(pydantic_ready(schema))
    except Exception as exc:  # any type a project may declare: pydantic's errors vary
        log.warning("pydantic cannot read %r (%s): Loom leaves its values unchecked", schema, exc)
        return None


def _json_schema(schema: Any) -> dict[str, Any]:
    if (found := adapter(schema)) is None:
        raise ValueError(f"pydantic cannot read {schema!r}")
    return found.json_schema()


def pydantic_ready(schema: Any) -> Any:
    """``schema`` with every ``typing.TypedDict`` in it (a field's type, a list's items…) rebuilt as a
    ``typing_extensions.TypedDict``, which pydantic reads on every Python version; other types as they are."""
    return _rebuilt(schema, {})


def _rebuilt(hint: Any, seen: dict[Any, Any]) -> Any:
    if is_typeddict(hint):
        return seen[hint] if hint in seen else _typed_dict(hint, seen)
    origin, args = get_origin(hint), get_args(hint)
    if origin is None or not args or origin is typing.Literal:
        return hint
    if origin is typing.Annotated:
        inner = _rebuilt(args[0], seen)
        return hint if inner is args[0] else typing.Annotated[(inner, *hint.__metadata__)]
    new_args = tuple(_rebuilt(arg, seen) for arg in args)
    if all(new is old for new, old in zip(new_args, args, strict=True)):
        return hint
    if origin in (typing.Union, types.UnionType):
        return typing.Union[new_args]  # noqa: UP007 (a tuple of types, built at run time)
    try:
        return origin[new_args]
    except TypeError:  # a generic that cannot be subscripted again this way: as it was
        return hint


def _typed_dict(schema: Any, seen: dict[Any, Any]) -> Any:
    """A ``typing.TypedDict``, or one with such a type inside, as a ``typing_extensions.TypedDict``."""
    seen[schema] = schema  # a TypedDict that names itself stays as it is (pydantic then says why it cannot)
    hints = get_type_hints(schema, include_extras=True)
    fields = {name: _rebuilt(unwrapped(hint), seen) for name, hint in hints.items()}
    if type(schema).__module__ != "typing" and all(fields[name] is unwrapped(hints[name]) for name in hints):
        return schema
    keyed = {
        name: Required[hint] if _required(schema, name, hints[name]) else NotRequired[hint]
        for name, hint in fields.items()
    }
    seen[schema] = rebuilt = typed_dict_like(schema, keyed)
    return rebuilt


def typed_dict_like(schema: Any, fields: dict[str, Any], total: bool = True) -> Any:
    """A ``typing_extensions.TypedDict`` named, documented and configured (``__pydantic_config__``) as ``schema``."""
    make_typed_dict: Any = TypedDict  # called with a name known at run time, which mypy's checks of it refuse
    made = make_typed_dict(schema.__name__, fields, total=total)
    made.__doc__, made.__module__ = schema.__doc__, schema.__module__
    if (config := getattr(schema, "__pydantic_config__", None)) is not None:
        made.__pydantic_config__ = config
    return made


def _required(schema: Any, name: str, hint: Any) -> bool:
    """Whether a key is required: as its ``Required``/``NotRequired`` says (Python 3.11's ``typing.TypedDict`` misses
    them when annotations are strings), else as the class's totality says."""
    if get_origin(hint) in (Required, NotRequired):
        return get_origin(hint) is Required
    return name in schema.__required_keys__


def unwrapped(hint: Any) -> Any:
    """``Required[X]`` and ``NotRequired[X]`` as ``X``."""
    return get_args(hint)[0] if get_origin(hint) in (Required, NotRequired) else hint


def schema_of(graph_id: str, what: str, build: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """``build()``, or None with a warning naming the graph when its ``what`` schema cannot be written."""
    try:
        return build()
    except Exception as exc:  # any type a project may declare: pydantic's and LangGraph's errors vary
        log.warning("graph %r: its %s schema cannot be written as JSON Schema (%s); left out", graph_id, what, exc)
        return None


def schemas_of(graph_id: str, compiled: Any) -> dict[str, Any]:
    """What ``/assistants/{id}/schemas`` answers for a compiled graph (or subgraph)."""
    return {
        "input_schema": schema_of(graph_id, "input", lambda: _io_jsonschema(compiled, "input")),
        "output_schema": schema_of(graph_id, "output", lambda: _io_jsonschema(compiled, "output")),
        "state_schema": schema_of(graph_id, "state", lambda: _state_jsonschema(compiled)),
        "config_schema": schema_of(graph_id, "config", lambda: _config_jsonschema(compiled)),
        "context_schema": schema_of(graph_id, "context", lambda: context_jsonschema(compiled)),
    }


@functools.lru_cache(maxsize=64)
def input_jsonschema(graph_id: str, graph: Any) -> dict[str, Any] | None:
    """The input's JSON schema as runs are checked against it (None if it cannot be written); building it costs
    ~40 ms of CPU, so once per graph."""
    return schema_of(graph_id, "input", lambda: _io_jsonschema(graph, "input"))


def _io_jsonschema(graph: Any, which: str) -> dict[str, Any]:
    """As LangGraph writes it, a TypedDict read through ``pydantic_ready``."""
    builder = getattr(graph, "builder", None)
    typ = getattr(builder, f"{which}_schema", None)
    if is_typeddict(typ):
        try:
            return _json_schema(typ)
        except Exception:  # a field pydantic cannot describe: the others are still written
            return _fieldwise(graph, typ)
    schema: dict[str, Any] = getattr(graph, f"get_{which}_jsonschema")()
    return schema


def context_jsonschema(graph: Any) -> dict[str, Any] | None:
    """The context schema's JSON Schema, as LangGraph writes it; None without one."""
    schema = getattr(graph, "context_schema", None)
    if schema is None:
        return None
    if isclass(schema) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    if is_typeddict(schema) or is_dataclass(schema):
        return _json_schema(schema)
    raise ValueError(f"{schema!r} is no BaseModel, TypedDict or dataclass")


def _config_jsonschema(compiled: Any) -> dict[str, Any]:
    """``configurable`` as LangGraph types it (the context schema), as langgraph-api answers; {} without one."""
    context = context_jsonschema(compiled)
    if not context:
        return {}
    schema = copy.deepcopy(context)
    for key in CONFIG_INTERNALS:
        schema.get("properties", {}).pop(key, None)
    return schema


def _state_jsonschema(compiled: Any) -> dict[str, Any]:
    """The state's fields, less LangGraph's managed values (``is_last_step``…), which are no channels: never in a
    thread's values nor written by an update (langgraph-api lists channels only). A field pydantic cannot
    describe (an arbitrary class) is any value there, so the others are still shown."""
    try:
        schema = _json_schema(compiled.builder.state_schema)
    except Exception:  # any type a project may declare: pydantic's errors vary
        schema = _fieldwise(compiled, compiled.builder.state_schema)
    managed = set(compiled.builder.managed)
    for name in managed:
        schema.get("properties", {}).pop(name, None)
    if required := [name for name in schema.get("required", []) if name not in managed]:
        schema["required"] = required
    else:
        schema.pop("required", None)
    return schema


def _fieldwise(compiled: Any, typ: Any) -> dict[str, Any]:
    """``typ``'s channels one by one, each as its own JSON Schema or, if it has none, any value (as langgraph-api
    writes a state it cannot describe whole)."""
    properties: dict[str, Any] = {}
    for name in compiled.builder.schemas[typ]:
        try:
            properties[name] = _json_schema(compiled.builder.channels[name].UpdateType)
        except Exception:  # not a channel (a managed value), or a type pydantic cannot describe: any value
            properties[name] = {}
    return {"title": getattr(typ, "__name__", "State"), "type": "object", "properties": properties}
