"""Structured output by JSON schema, shared by the embedded and the fake model.

Both models produce JSON text that matches a schema (llama.cpp by grammar-constrained decoding,
the fake model by script), so one parser turns that text into the caller's type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, TypeAdapter

SchemaLike = type[BaseModel] | dict[str, Any] | type


def json_schema_of(schema: SchemaLike) -> dict[str, Any]:
    if isinstance(schema, dict):
        return schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return TypeAdapter(schema).json_schema()


def parse_structured(message: AIMessage, schema: SchemaLike) -> Any:
    """Parse the model's JSON answer into ``schema``; raises ``ValueError`` when it does not fit."""
    text = message.content if isinstance(message.content, str) else json.dumps(message.content)
    data = json.loads(text)
    if isinstance(schema, dict):
        return data
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_validate(data)
    return TypeAdapter(schema).validate_python(data)


def structured_runnable(bound: Runnable[Any, Any], schema: SchemaLike, include_raw: bool) -> Runnable[Any, Any]:
    """``bound`` answers with JSON text; return a runnable yielding the parsed object."""
    parse: Runnable[Any, Any] = RunnableLambda(lambda msg: parse_structured(msg, schema))
    if not include_raw:
        return bound | parse

    def parse_with_raw(msg: AIMessage) -> dict[str, Any]:
        try:
            return {"raw": msg, "parsed": parse_structured(msg, schema), "parsing_error": None}
        except (ValueError, TypeError) as exc:
            return {"raw": msg, "parsed": None, "parsing_error": exc}

    return bound | RunnableLambda(parse_with_raw)


class JsonSchemaChatModel(BaseChatModel):
    """A chat model whose ``_generate`` honours ``tools`` and ``response_schema`` keyword arguments."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def with_structured_output(
        self, schema: SchemaLike, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        return structured_runnable(self.bind(response_schema=json_schema_of(schema)), schema, include_raw)
