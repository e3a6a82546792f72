"""A deterministic, scripted chat model for tests and offline demos (``fake:`` provider).

Each call takes the next scripted reply; when the script is spent, text calls echo the last
user message and structured calls fail (so fallbacks get exercised). Replies can be text, tool
calls or structured objects, and stream token by token like a real provider.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel, Field, PrivateAttr

from nodes.models.structured import JsonSchemaChatModel

Reply = AIMessage | str | dict[str, Any] | BaseModel | Callable[[list[BaseMessage]], AIMessage]


def tool_call(name: str, args: dict[str, Any] | None = None, call_id: str | None = None) -> AIMessage:
    """A scripted reply that calls one tool."""
    return tool_calls((name, args or {}, call_id))


def tool_calls(*calls: tuple[str, dict[str, Any], str | None]) -> AIMessage:
    """A scripted reply that calls several tools at once."""
    return AIMessage(
        content="",
        tool_calls=[
            ToolCall(name=name, args=args, id=call_id or f"call_{name}_{i}", type="tool_call")
            for i, (name, args, call_id) in enumerate(calls)
        ],
    )


KEPT_CALLS = 256
"""Prompts a fake model remembers: what a test inspects, while a server on ``fake:echo`` stays flat."""


class FakeChatModel(JsonSchemaChatModel):
    """Scripted replies in order; records the prompts it saw in ``calls`` (the first ``KEPT_CALLS``)."""

    replies: list[Any] = Field(default_factory=list)
    name_for_usage: str = "fake"
    _cursor: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @classmethod
    def from_spec(cls, name: str) -> FakeChatModel:
        """``fake:`` / ``fake:echo`` echo; ``fake:/path/script.json`` replays a JSON script."""
        if not name or name == "echo":
            return cls(name_for_usage="fake:echo")
        script = json.loads(Path(name).read_text())
        return cls(replies=[_reply_from_json(item) for item in script], name_for_usage=f"fake:{name}")

    @property
    def _llm_type(self) -> str:
        return "loom-fake"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """Callbacks see the ``fake`` provider, which the price table counts as free, like ``local``.

        Built here: the base class probes ``model``, ``temperature``… with ``hasattr``, and on a pydantic
        model each missing one raises and catches an AttributeError, on every call."""
        params = LangSmithParams(ls_provider="fake", ls_model_type="chat")
        if stop:
            params["ls_stop"] = stop
        if isinstance(model := kwargs.get("model"), str):
            params["ls_model_name"] = model
        return params

    @property
    def calls(self) -> list[list[BaseMessage]]:
        return self._calls

    @property
    def remaining(self) -> int:
        return len(self.replies) - self._cursor

    def _next_reply(self, messages: list[BaseMessage], wants_json: bool) -> AIMessage:
        with self._lock:
            if len(self._calls) < KEPT_CALLS:  # tests read calls from the first; later ones are not kept
                self._calls.append(list(messages))
            reply = self.replies[self._cursor] if self._cursor < len(self.replies) else None
            self._cursor += reply is not None
        if reply is None:
            if wants_json:
                raise ValueError("fake model: no scripted structured reply left")
            return AIMessage(content=f"echo: {_last_human_text(messages)}")
        return _as_message(reply, messages)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._next_reply(messages, wants_json="response_schema" in kwargs)
        message = _with_usage(message, messages, self.name_for_usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = _with_usage(
            self._next_reply(messages, wants_json="response_schema" in kwargs),
            messages,
            self.name_for_usage,
        )
        text = message.content if isinstance(message.content, str) else ""
        words = text.split(" ") if text else []
        for i, word in enumerate(words):
            chunk = AIMessageChunk(content=word if i == 0 else " " + word, id=message.id)
            if run_manager:
                run_manager.on_llm_new_token(chunk.content, chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=message.id,
                tool_call_chunks=[
                    ToolCallChunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                    for i, c in enumerate(message.tool_calls)
                ],
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
            )
        )


def _as_message(reply: Any, messages: list[BaseMessage]) -> AIMessage:
    if callable(reply) and not isinstance(reply, type):
        reply = reply(messages)
    if isinstance(reply, AIMessage):
        return reply.model_copy()
    if isinstance(reply, str):
        return AIMessage(content=reply)
    if isinstance(reply, BaseModel):
        return AIMessage(content=reply.model_dump_json())
    return AIMessage(content=json.dumps(reply))


def _reply_from_json(item: Any) -> Reply:
    """Script items: a string, ``{"tool_calls": [{"name", "args"}]}`` or ``{"json": {...}}``."""
    if isinstance(item, str):
        return item
    if "tool_calls" in item:
        return tool_calls(*((c["name"], c.get("args", {}), c.get("id")) for c in item["tool_calls"]))
    if "json" in item:
        return dict(item["json"])
    return AIMessage(content=item.get("content", ""))


def _last_human_text(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def _with_usage(message: AIMessage, prompt: list[BaseMessage], model_name: str) -> AIMessage:
    """Count words as tokens so usage accounting is exercised deterministically."""
    input_tokens = sum(len(m.text.split()) for m in prompt)
    output_tokens = len(message.text.split()) + len(message.tool_calls)
    return message.model_copy(
        update={
            "usage_metadata": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
            "response_metadata": {**message.response_metadata, "model_name": model_name},
        }
    )
