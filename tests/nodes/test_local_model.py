"""The embedded model through llama.cpp's in-process server: every tool schema, schemas the grammar cannot
fully express, cancellation that frees the slot, and concurrent callers on shared slots."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from graphs.plan_execute import plan_tools
from graphs.support import AGENT_TOOLS
from graphs.workers import WORKER_TOOLS
from loom.settings import get_settings
from nodes.assistant.router import hand_off
from nodes.models import load_chat_model
from nodes.models.local import model_server, resolve_model_path, small_model_policy
from nodes.support.triage import escalate
from nodes.tools.charts import create_chart
from nodes.tools.images import generate_image
from nodes.tools.workspace import WORKSPACE_TOOLS

pytestmark = pytest.mark.embedded_model
DEADLINE_S = 120.0


@pytest.fixture(autouse=True)
def embedded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOOM_MODEL_MAX_TOKENS", "64")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class Contact(BaseModel):
    """A schema llama.cpp's grammar expresses only in part: a lookahead pattern, formats, nested anyOf."""

    email: str = Field(json_schema_extra={"format": "email", "pattern": r"^(?=.*@)[^\s]+@[^\s]+\.[a-z]+$"})
    website: str | None = Field(default=None, json_schema_extra={"format": "uri"})
    reach: int | str | list[int | str] = Field(description="a phone number, a handle, or several")


def _update_contact(email: str, reach: int | str | list[int | str], website: str | None = None) -> str:
    return "ok"


def bundled_tools() -> list[BaseTool]:
    tools: list[BaseTool] = [hand_off, escalate, create_chart, generate_image, *WORKSPACE_TOOLS, *plan_tools()]
    for agent_tools in AGENT_TOOLS.values():
        tools += agent_tools
    for worker_tools in WORKER_TOOLS.values():
        tools += worker_tools()
    return list({tool.name: tool for tool in tools}.values())


async def test_every_bundled_tool_schema_and_a_hard_schema_decode_without_error() -> None:
    model = await asyncio.to_thread(load_chat_model, "local:smollm2")  # starts the model server: off the loop
    hard = StructuredTool.from_function(_update_contact, name="update_contact", args_schema=Contact)
    tools = [*bundled_tools(), hard]
    assert len(tools) >= 20
    for tool in tools:
        reply = await model.bind_tools([tool]).ainvoke(f"Use {tool.name}: {tool.description[:80]}")
        assert isinstance(reply, AIMessage)
        assert all(call["name"] == tool.name for call in reply.tool_calls), reply.tool_calls
    structured = model.with_structured_output(Contact, method="json_schema", include_raw=True)
    result = await structured.ainvoke("Ann's email is ann@example.com and her phone is 5551234.")
    assert result["raw"] is not None  # parsed or a parsing error, never an exception or a dead process
    assert (await model.ainvoke("Say OK.")).text


def test_a_tool_choice_is_required_until_a_tool_has_answered() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    asked = {"messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    request, choosing = small_model_policy(asked)
    assert choosing and "tools" not in request and request["response_format"]["type"] == "json_schema"
    answered = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [tool],
    }
    request, choosing = small_model_policy(answered)
    assert not choosing and "tools" not in request and "response_format" not in request
    assert request["messages"][-1] == {"role": "user", "content": "Result of f:\n42"}


async def test_cancelling_a_generation_frees_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_LOCAL_PARALLEL", "1")
    monkeypatch.setenv("LOOM_MODEL_MAX_TOKENS", "4000")  # minutes of generation if nothing stopped it
    get_settings.cache_clear()
    settings = get_settings()
    server = await asyncio.to_thread(model_server, resolve_model_path("smollm2"), settings)
    model = await asyncio.to_thread(load_chat_model, "local:smollm2", settings)
    first_token = asyncio.Event()

    async def write_forever() -> None:
        async for chunk in model.astream("Count from one to ten thousand, one number per line."):
            if isinstance(chunk, AIMessageChunk) and chunk.text:
                first_token.set()

    writer = asyncio.create_task(write_forever())
    await asyncio.wait_for(first_token.wait(), DEADLINE_S)
    assert server.busy_slots() == 1
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    await asyncio.wait_for(_until_idle(server), 30)  # the 4000 tokens left would take minutes
    monkeypatch.setenv("LOOM_MODEL_MAX_TOKENS", "16")
    get_settings.cache_clear()
    small = await asyncio.to_thread(load_chat_model, "local:smollm2")
    reply = await asyncio.wait_for(small.ainvoke("Say hi."), DEADLINE_S)
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0


async def _until_idle(server: object) -> None:
    while server.busy_slots():  # type: ignore[attr-defined]
        await asyncio.sleep(0.02)  # llama.cpp frees the slot on its own thread, a few ms after the stop


async def test_concurrent_callers_share_the_slots() -> None:
    model = await asyncio.to_thread(load_chat_model, "local:smollm2")
    replies = await asyncio.gather(*(model.ainvoke(f"Name a colour number {i}.") for i in range(8)))
    assert all(reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0 for reply in replies)
    assert {reply.response_metadata["model_name"] for reply in replies} == {"local:smollm2"}


def test_the_sync_path_reports_the_prompt_tokens_the_server_counted() -> None:
    reply = load_chat_model("local:smollm2").invoke("Say hi.")
    assert reply.usage_metadata and reply.usage_metadata["input_tokens"] > 3


async def test_a_prompt_longer_than_the_context_fails_with_an_error_naming_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOM_LOCAL_CONTEXT_TOKENS", "512")
    get_settings.cache_clear()
    model = load_chat_model("local:smollm2")
    with pytest.raises(openai.BadRequestError) as raised:
        await model.ainvoke("lorem ipsum " * 600)
    assert "context" in str(raised.value) and "512" in str(raised.value)
    assert "LOOM_LOCAL_CONTEXT_TOKENS per slot: raise it" in str(raised.value)
    assert (await model.ainvoke("Say OK.")).text  # the server is still up
