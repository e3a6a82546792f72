"""Structured output, one way for every node: ask, parse, validate, and say plainly when it failed.

Nodes used to catch ``ValueError`` and return nothing, losing both the reason and the usage record.
:func:`ask_structured` returns a :class:`StructuredReply` instead (the value or None, the error text,
the usage either way), logs every failure and counts it per node, and leaves the fallback to the caller.

OpenAI's strict structured outputs accept a subset of JSON Schema (every object closed, every
property required, no length bounds or defaults), so for ``openai:`` models the schema is rewritten
into that subset (optional fields become nullable) and the full schema is checked here after parsing.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from openai import ContentFilterFinishReasonError, LengthFinishReasonError
from pydantic import BaseModel, ValidationError

from nodes.models import call_model, priced_usage, usage_of
from nodes.models.structured import json_schema_of
from state.common import UsageRecord

logger = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

STRICT_DROPPED = frozenset(
    {"default", "minLength", "maxLength", "minProperties", "maxProperties", "uniqueItems", "examples"}
)
"""Keywords OpenAI's strict mode refuses; the value is still validated against them after parsing."""

_failures: Counter[str] = Counter()
_failures_lock = threading.Lock()


@dataclass(frozen=True)
class StructuredReply(Generic[T]):
    value: T | None
    usage: UsageRecord
    error: str = ""
    """Why there is no value ("" when there is one): the caller records it and falls back."""

    @property
    def usages(self) -> list[UsageRecord]:
        return [self.usage]


def parse_failures() -> dict[str, int]:
    """Structured-output failures per node since the process started."""
    with _failures_lock:
        return dict(_failures)


@overload
async def ask_structured(
    model: BaseChatModel, schema: type[M], messages: Sequence[BaseMessage], *, node: str, config: RunnableConfig
) -> StructuredReply[M]: ...
@overload
async def ask_structured(
    model: BaseChatModel,
    schema: dict[str, Any],
    messages: Sequence[BaseMessage],
    *,
    node: str,
    config: RunnableConfig,
) -> StructuredReply[dict[str, Any]]: ...
async def ask_structured(
    model: BaseChatModel,
    schema: type[BaseModel] | dict[str, Any],
    messages: Sequence[BaseMessage],
    *,
    node: str,
    config: RunnableConfig,
) -> StructuredReply[Any]:
    """The model's answer as ``schema`` (a pydantic model, or a JSON schema with a ``title``)."""
    started = time.perf_counter()
    try:
        result, usage = await call_model(structured_model(model, schema), list(messages), node=node, config=config)
    except ValueError as exc:  # the model produced nothing parseable at all
        return _failed(node, str(exc), usage_of(None, node, (time.perf_counter() - started) * 1000))
    except (LengthFinishReasonError, ContentFilterFinishReasonError) as exc:  # cut off before the JSON closed
        usage = _cut_off_usage(exc, node, (time.perf_counter() - started) * 1000)
        return _failed(node, f"{type(exc).__name__}: the answer was cut off before it was complete", usage)
    if result.get("parsed") is None:
        return _failed(node, str(result.get("parsing_error") or "no structured output"), usage)
    try:
        return StructuredReply(value=_validated(result["parsed"], schema), usage=usage)
    except ValidationError as exc:
        return _failed(node, str(exc), usage)


def _cut_off_usage(
    exc: LengthFinishReasonError | ContentFilterFinishReasonError, node: str, latency_ms: float
) -> UsageRecord:
    """The tokens a cut-off answer still cost, from the completion the provider returned."""
    completion = exc.completion
    usage = completion.usage if completion is not None else None
    model = str(completion.model if completion is not None else "unknown")
    tokens = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens} if usage else {}
    return priced_usage(node, model, "openai", tokens, latency_ms)


def _failed(node: str, error: str, usage: UsageRecord) -> StructuredReply[Any]:
    with _failures_lock:
        _failures[node] += 1
    logger.warning("structured output failed in %s (%s): %s", node, usage["model"], error[:500])
    return StructuredReply(value=None, usage=usage, error=error)


def structured_model(model: BaseChatModel, schema: type[BaseModel] | dict[str, Any]) -> Runnable[Any, Any]:
    """``model.with_structured_output(..., include_raw=True)``, in the subset OpenAI accepts for ``openai:``."""
    if not _is_openai(model):
        return model.with_structured_output(schema, include_raw=True)
    spec = json_schema_of(schema)
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(spec.get("title") or "answer"))[:64]
    response_format = {"name": name, "schema": openai_strict_schema(spec), "strict": True}
    return model.with_structured_output(response_format, method="json_schema", include_raw=True)


def _is_openai(model: BaseChatModel) -> bool:
    """A provider reached through langchain-openai; not the embedded ``local:`` model, whose grammar takes
    the full schema (its length bounds keep a small model from rambling inside a string)."""
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return False
    return isinstance(model, BaseChatOpenAI) and not str(model.model_name).startswith("local:")


def openai_strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` in OpenAI's strict subset: closed objects, all properties required, optional ones nullable."""
    converted = _strict(schema)
    if not isinstance(converted, dict):
        raise TypeError("a structured-output schema must be a JSON object schema")
    return converted


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:  # strict mode allows no keywords beside a $ref
        return {"$ref": node["$ref"]}
    out = {key: _strict(value) for key, value in node.items() if key not in STRICT_DROPPED}
    if "properties" in node:
        required = set(node.get("required", []))
        out["properties"] = {
            name: _strict(value) if name in required else _nullable(_strict(value))
            for name, value in node["properties"].items()
        }
        out["required"] = list(node["properties"])
        out["additionalProperties"] = False
    elif node.get("type") == "object":
        out["additionalProperties"] = False
    for key in ("$defs", "definitions"):
        if key in node:
            out[key] = {name: _strict(value) for name, value in node[key].items()}
    return out


def _nullable(spec: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in spec:
        if {"type": "null"} in spec["anyOf"]:
            return spec
        return {**spec, "anyOf": [*spec["anyOf"], {"type": "null"}]}
    return {"anyOf": [spec, {"type": "null"}]}


def _validated(parsed: Any, schema: type[BaseModel] | dict[str, Any]) -> Any:
    """Checks what the strict schema could not say; a null optional field means "use its default"."""
    if isinstance(parsed, BaseModel):
        parsed = parsed.model_dump()
    spec = json_schema_of(schema)
    cleaned = _drop_null_optionals(parsed, spec, spec.get("$defs", {}))
    if isinstance(schema, dict):
        return cleaned
    return schema.model_validate(cleaned)


def _drop_null_optionals(value: Any, spec: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in spec:
        spec = defs.get(spec["$ref"].rsplit("/", 1)[-1], {})
    if isinstance(value, dict) and "properties" in spec:
        required = set(spec.get("required", []))
        properties = spec["properties"]
        return {
            key: _drop_null_optionals(item, properties.get(key, {}), defs)
            for key, item in value.items()
            if item is not None or key in required
        }
    if isinstance(value, list) and isinstance(spec.get("items"), dict):
        return [_drop_null_optionals(item, spec["items"], defs) for item in value]
    if isinstance(value, dict) and "anyOf" in spec:
        return _drop_null_optionals(value, _shape_of(value, spec["anyOf"], defs), defs)
    return value


def _shape_of(value: dict[str, Any], shapes: list[dict[str, Any]], defs: dict[str, Any]) -> dict[str, Any]:
    """The object shape of an ``anyOf`` that ``value`` is: same keys, and its ``const`` fields agree."""
    objects = [defs.get(s["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in s else s for s in shapes]
    objects = [shape for shape in objects if "properties" in shape]
    for shape in objects:
        properties = shape["properties"]
        consts_agree = all(value.get(key) == p["const"] for key, p in properties.items() if "const" in p)
        if set(properties) == set(value) and consts_agree:
            return shape
    return objects[0] if objects else {}
