"""The scripted OpenAI-compatible server accepts what langchain-openai sends for valid schemas and refuses the rest."""

from __future__ import annotations

import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.openai_server import ScriptedOpenAI, call, schema_named, structured, text


class Verdict(BaseModel):
    label: str
    score: int


class WithDefault(BaseModel):
    label: str
    note: str = ""


@tool
def lookup(query: str, limit: int) -> str:
    """Look something up."""
    return query * limit


def client(server: ScriptedOpenAI) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", base_url=server.url, api_key="sk-test", max_retries=0)  # type: ignore[arg-type]


async def test_structured_output_and_strict_tools_as_langchain_openai_sends_them(
    openai_server: ScriptedOpenAI,
) -> None:
    openai_server.add(
        structured({"label": "ok", "score": 3}, when=schema_named("Verdict")),
        call("lookup", {"query": "a", "limit": 2}),
    )
    verdict = await client(openai_server).with_structured_output(Verdict).ainvoke([HumanMessage("judge")])
    message = await client(openai_server).bind_tools([lookup], strict=True).ainvoke([HumanMessage("look up a")])
    assert verdict == Verdict(label="ok", score=3)
    assert message.tool_calls[0]["name"] == "lookup" and message.tool_calls[0]["args"] == {"query": "a", "limit": 2}
    sent = openai_server.requests
    assert sent[0]["response_format"]["json_schema"]["strict"] is True and sent[1]["tools"][0]["function"]["strict"]


async def test_a_schema_openai_refuses_gets_openais_400(openai_server: ScriptedOpenAI) -> None:
    openai_server.add(structured({"label": "ok"}))
    with pytest.raises(openai.BadRequestError) as refused, pytest.warns(UserWarning, match="Invalid schema"):
        await client(openai_server).with_structured_output(WithDefault).ainvoke([HumanMessage("judge")])
    assert refused.value.status_code == 400
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"
    assert "'default' is not permitted" in body["message"] and body["param"] == "response_format"
    assert openai_server.unused and not openai_server.requests


async def test_unanswered_tool_calls_are_refused(openai_server: ScriptedOpenAI) -> None:
    openai_server.add(text("fine"))
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        },
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(openai.BadRequestError, match="did not have response messages"):
        await client(openai_server).ainvoke(history)


async def test_replies_stream_as_sse_chunks(openai_server: ScriptedOpenAI) -> None:
    openai_server.add(text("one two three"), call("lookup", {"query": "streamed", "limit": 1}))
    chunks = [chunk async for chunk in client(openai_server).astream([HumanMessage("count")])]
    assert [c.content for c in chunks if c.content] == ["one ", "two ", "three"]
    merged: AIMessageChunk | None = None
    async for chunk in client(openai_server).bind_tools([lookup]).astream([HumanMessage("look up")]):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None and merged.tool_calls[0]["args"] == {"query": "streamed", "limit": 1}
