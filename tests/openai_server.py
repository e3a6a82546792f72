"""A real OpenAI-compatible chat-completions server on 127.0.0.1, scripted per test.

Graphs reach it through langchain-openai exactly as they would reach OpenAI, so it refuses, with a
400 in OpenAI's error shape, what OpenAI refuses: tool parameters that are not JSON Schema objects,
bad function or schema names, a ``json_schema`` response format without a name, and under
``strict: true`` any object without ``additionalProperties: false``, a property left out of
``required``, or a keyword strict mode does not support. It also checks the conversation the way
OpenAI does (every tool call answered, no tool result without its call).

Replies come from a script, in order, each optionally guarded by ``when`` (a substring of the
request, or a predicate on its body), so parallel calls of several roles still get the right
answer. A reply is text, tool calls or JSON, streamed as SSE chunks when the client asks to stream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Body = dict[str, Any]
Content = str | Callable[[list[dict[str, Any]]], str]
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
STRICT_FORBIDDEN = frozenset(
    {
        "default",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "patternProperties",
        "unevaluatedProperties",
        "propertyNames",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "not",
        "if",
        "then",
        "else",
        "allOf",
        "dependentRequired",
        "dependentSchemas",
    }
)
"""Keywords OpenAI's strict mode answers with "'<keyword>' is not permitted"."""


class InvalidRequest(Exception):
    """What OpenAI answers with 400 ``invalid_request_error``."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Reply:
    """One scripted answer: text (or a function of the request's messages), tool calls, or both."""

    content: Content = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    when: str | Callable[[Body], bool] | None = None
    repeat: bool = False
    """A repeated reply is never used up (a default for calls the test does not care about)."""
    cut_off: bool = False
    """Ends with ``finish_reason: "length"``, as when the model runs out of ``max_tokens``."""

    def matches(self, body: Body) -> bool:
        if self.when is None:
            return True
        if callable(self.when):
            return self.when(body)
        return self.when in json.dumps(body, ensure_ascii=False)


def text(content: Content, when: str | Callable[[Body], bool] | None = None, repeat: bool = False) -> Reply:
    return Reply(content=content, when=when, repeat=repeat)


def call(name: str, args: dict[str, Any], when: str | Callable[[Body], bool] | None = None) -> Reply:
    return Reply(tool_calls=[(name, args)], when=when)


def structured(data: Any, when: str | Callable[[Body], bool] | None = None, repeat: bool = False) -> Reply:
    """A JSON answer for a ``response_format`` request (``when`` defaults to the schema's name)."""
    return Reply(content=json.dumps(data), when=when, repeat=repeat)


def as_messages(messages: list[dict[str, Any]]) -> list[BaseMessage]:
    """The user and tool turns of a request, as the fake-model tests' scripted helpers read them."""
    out: list[BaseMessage] = []
    for message in messages:
        if message["role"] == "user":
            out.append(HumanMessage(message["content"]))
        elif message["role"] == "tool":
            out.append(ToolMessage(message["content"], tool_call_id=message["tool_call_id"]))
    return out


def replying(make: Callable[[list[BaseMessage]], AIMessage]) -> Callable[[list[dict[str, Any]]], str]:
    """A reply computed by a fake-model script function from this request's messages."""
    return lambda messages: make(as_messages(messages)).text


def last_is_tool(body: Body) -> bool:
    """``when=``: the request answers a tool call (the model's turn after its tools ran)."""
    return bool(body["messages"][-1]["role"] == "tool")


def writing(body: Body) -> bool:
    """``when=``: a writer's request: no structured output, no search tool (it may look passages up)."""
    bound = {tool["function"]["name"] for tool in body.get("tools") or []}
    return bound <= {"get_passage"} and not body.get("response_format") and not last_is_tool(body)


def system_says(words: str) -> Callable[[Body], bool]:
    """``when=``: the request's system prompt contains ``words``."""
    return lambda body: words in str(body["messages"][0].get("content"))


def schema_named(name: str) -> Callable[[Body], bool]:
    """``when=``: the request asks for structured output with this schema name."""
    return lambda body: ((body.get("response_format") or {}).get("json_schema") or {}).get("name") == name


def tools_offered(*names: str) -> Callable[[Body], bool]:
    """``when=``: the request binds all of these tools."""

    def offered(body: Body) -> bool:
        bound = {tool["function"]["name"] for tool in body.get("tools") or []}
        return set(names) <= bound

    return offered


class ScriptedOpenAI:
    """The server and its script; ``requests`` keeps every accepted body, ``rejected`` every 400."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[Body] = []
        self.rejected: list[tuple[Body, str]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"

    def reset(self) -> None:
        """Forget the script and what was received (a server shared by several tests)."""
        with self._lock:
            self.script.clear()
            self.requests.clear()
            self.rejected.clear()

    def add(self, *replies: Reply | str) -> None:
        with self._lock:
            self.script += [reply if isinstance(reply, Reply) else text(reply) for reply in replies]

    @property
    def unused(self) -> list[Reply]:
        return [reply for reply in self.script if not reply.repeat]

    def start(self) -> ScriptedOpenAI:
        self._thread.start()  # the socket already listens: clients may connect at once
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    def _next_reply(self, body: Body) -> Reply:
        with self._lock:
            for index, reply in enumerate(self.script):
                if reply.matches(body):
                    if not reply.repeat:
                        del self.script[index]
                    return reply
        raise InvalidRequest("the test script has no reply for this request: " + json.dumps(body)[-1500:])

    async def _completions(self, request: Request) -> Response:
        body: Any = None
        try:
            try:
                body = json.loads(await request.body())
            except ValueError as exc:
                raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}") from None
            check_request(body)
            reply = self._next_reply(body)
        except InvalidRequest as exc:
            self.rejected.append((body if isinstance(body, dict) else {}, str(exc)))
            error = {"message": str(exc), "type": "invalid_request_error", "param": exc.param, "code": None}
            return JSONResponse({"error": error}, status_code=400)
        self.requests.append(body)
        content = reply.content(body["messages"]) if callable(reply.content) else reply.content
        calls = [(f"call_{next(self._ids)}", name, json.dumps(args)) for name, args in reply.tool_calls]
        if body.get("stream"):
            chunks = stream_chunks(body, content, calls)
            return StreamingResponse(chunks, media_type="text/event-stream")
        answer = completion(body, content, calls)
        if reply.cut_off:
            answer["choices"][0]["finish_reason"] = "length"
        return JSONResponse(answer)


def completion(body: Body, content: str, calls: list[tuple[str, str, str]]) -> Body:
    message: Body = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for call_id, name, args in calls
        ]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": usage(body, content, calls),
    }


def usage(body: Body, content: str, calls: list[tuple[str, str, str]]) -> Body:
    prompt = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
    output = len(content.split()) + sum(len(args) // 4 for _, _, args in calls)
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


async def stream_chunks(body: Body, content: str, calls: list[tuple[str, str, str]]) -> AsyncIterator[str]:
    """The reply as OpenAI streams it: role, content pieces, tool-call pieces, finish, usage, ``[DONE]``."""

    def chunk(delta: Body, finish: str | None = None) -> str:
        data = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(data)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in re.findall(r"\S+\s*|\s+", content):
        yield chunk({"content": piece})
        await asyncio.sleep(0)
    for index, (call_id, name, args) in enumerate(calls):
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        yield chunk({"tool_calls": [head]})
        for start in range(0, len(args), 16):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": args[start : start + 16]}}]})
    yield chunk({}, "tool_calls" if calls else "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        data = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        yield f"data: {json.dumps({**data, 'choices': [], 'usage': usage(body, content, calls)})}\n\n"
    yield "data: [DONE]\n\n"


def check_request(body: Any) -> None:
    """Raise :class:`InvalidRequest` for what OpenAI's chat completions endpoint refuses."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str):
        raise InvalidRequest("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", "messages")
    check_messages(messages)
    for index, tool in enumerate(body.get("tools") or []):
        check_tool(tool, f"tools[{index}]")
    if (response_format := body.get("response_format")) is not None:
        check_response_format(response_format)


def check_messages(messages: list[Any]) -> None:
    pending: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in {"system", "developer", "user", "assistant", "tool"}:
            raise InvalidRequest(f"Invalid value for 'role' in messages[{index}].", f"messages.[{index}].role")
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                raise InvalidRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            raise InvalidRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(pending)}",
                f"messages.[{index}].role",
            )
        for call in message.get("tool_calls") or [] if role == "assistant" else []:
            if not isinstance(call.get("function", {}).get("arguments"), str):
                raise InvalidRequest("tool call arguments must be a string", f"messages.[{index}].tool_calls")
            pending.add(call.get("id"))
    if pending:
        raise InvalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(pending)}",
            "messages",
        )


def check_tool(tool: Any, where: str) -> None:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict):
        raise InvalidRequest(f"Missing required parameter: '{where}.function'.", where)
    name = function.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidRequest(f"Invalid '{where}.function.name': string does not match pattern.", f"{where}.function")
    parameters = function.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        kind = parameters.get("type") if isinstance(parameters, dict) else None
        raise InvalidRequest(
            f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"', "
            f"got 'type: \"{kind}\"'.",
            f"{where}.function.parameters",
        )
    if function.get("strict"):
        check_strict(parameters, f"Invalid schema for function '{name}'", f"{where}.function.parameters")


def check_response_format(response_format: Any) -> None:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("text", "json_object"):
        return
    if kind != "json_schema":
        raise InvalidRequest(f"Invalid value for 'response_format.type': {kind!r}.", "response_format.type")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or "name" not in spec:
        raise InvalidRequest("Missing required parameter: 'response_format.json_schema.name'.", "response_format")
    name = spec["name"]
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidRequest(
            f"Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string "
            f"that matches the pattern '^[a-zA-Z0-9_-]+$'. Got {name!r}.",
            "response_format.json_schema.name",
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequest("'response_format.json_schema.schema' must be a JSON Schema object.", "response_format")
    if spec.get("strict"):
        if schema.get("type") != "object" or "anyOf" in schema:
            raise InvalidRequest(
                f"Invalid schema for response_format '{name}': schema must be a JSON Schema of 'type: "
                f'"object"\', got \'type: "{schema.get("type")}"\'.',
                "response_format",
            )
        check_strict(schema, f"Invalid schema for response_format '{name}'", "response_format")


def check_strict(schema: dict[str, Any], prefix: str, param: str) -> None:
    for path, node in walk(schema, ()):
        context = f"{prefix}: In context={path}"
        for keyword in STRICT_FORBIDDEN & set(node):
            raise InvalidRequest(f"{context}, '{keyword}' is not permitted.", param)
        if node.get("type") == "object" or "properties" in node:
            if node.get("additionalProperties") is not False:
                raise InvalidRequest(
                    f"{context}, 'additionalProperties' is required to be supplied and to be false.", param
                )
            missing = [key for key in node.get("properties", {}) if key not in node.get("required", [])]
            if missing:
                raise InvalidRequest(
                    f"{context}, 'required' is required to be supplied and to be an array including every key "
                    f"in properties. Missing '{missing[0]}'.",
                    param,
                )


def walk(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every sub-schema of ``node`` with its location, as OpenAI names it in errors."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, (*path, "properties", name))
    for key in ("$defs", "definitions"):
        for name, child in (node.get(key) or {}).items():
            yield from walk(child, (*path, key, name))
    for key in ("anyOf", "oneOf"):
        for index, child in enumerate(node.get(key) or []):
            yield from walk(child, (*path, key, str(index)))
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], (*path, "items"))
