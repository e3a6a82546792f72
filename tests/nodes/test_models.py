from __future__ import annotations

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from loom.settings import Settings, get_settings
from nodes.models import call_model, is_transient_error, load_chat_model
from nodes.models.fake import KEPT_CALLS, FakeChatModel, tool_call


class Verdict(BaseModel):
    label: str
    score: int


async def test_fake_model_replays_script_then_echoes() -> None:
    model = FakeChatModel(replies=["first answer", tool_call("search_calendar", {"query": "AI"})])
    first = await model.ainvoke([HumanMessage("hi")])
    second = await model.ainvoke([HumanMessage("hi")])
    third = await model.ainvoke([HumanMessage("are you there?")])
    assert first.content == "first answer"
    assert second.tool_calls[0]["name"] == "search_calendar"
    assert second.tool_calls[0]["args"] == {"query": "AI"}
    assert third.content == "echo: are you there?"
    assert len(model.calls) == 3


def test_a_fake_model_serving_many_runs_keeps_only_the_first_prompts() -> None:
    """``fake:echo`` serves benchmarks: remembering every prompt grew the server by ~1 MiB per 1,000 runs."""
    model = FakeChatModel()
    for n in range(KEPT_CALLS + 10):
        model.invoke([HumanMessage(f"call {n}")])
    assert len(model.calls) == KEPT_CALLS and model.calls[0][-1].text == "call 0"


async def test_fake_model_streams_token_by_token_with_usage() -> None:
    model = FakeChatModel(replies=["one two three four"])
    chunks = [chunk async for chunk in model.astream([HumanMessage("count")])]
    text_chunks = [c for c in chunks if isinstance(c, AIMessageChunk) and c.content]
    assert [c.content for c in text_chunks] == ["one", " two", " three", " four"]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.usage_metadata is not None and merged.usage_metadata["output_tokens"] == 4


async def test_structured_output_parses_script_and_reports_bad_json() -> None:
    model = FakeChatModel(replies=[{"label": "billing", "score": 3}, "not json"])
    structured = model.with_structured_output(Verdict, include_raw=True)
    good = await structured.ainvoke([HumanMessage("x")])
    bad = await structured.ainvoke([HumanMessage("x")])
    assert good["parsed"] == Verdict(label="billing", score=3)
    assert bad["parsed"] is None and bad["parsing_error"] is not None


async def test_structured_output_fails_when_script_is_spent() -> None:
    with pytest.raises(ValueError, match="no scripted structured reply"):
        await FakeChatModel().with_structured_output(Verdict).ainvoke([HumanMessage("x")])


async def test_call_model_records_usage_per_node() -> None:
    reply, usage = await call_model(
        FakeChatModel(replies=["a b c"]), [HumanMessage("one two")], node="writer", config={}
    )
    assert reply.content == "a b c"
    assert usage["node"] == "writer"
    assert usage["model"] == "fake"
    assert (usage["input_tokens"], usage["output_tokens"]) == (2, 3)
    assert usage["latency_ms"] >= 0


def test_model_specs_resolve_by_provider(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "script.json"
    script.write_text('["scripted", {"tool_calls": [{"name": "t", "args": {"a": 1}}]}]')
    scripted = load_chat_model(f"fake:{script}")
    assert isinstance(scripted, FakeChatModel) and scripted.remaining == 2
    assert load_chat_model(f"fake:{script}") is scripted  # cursor survives between calls
    settings = Settings(openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1")
    openai = load_chat_model("openai:gpt-4o-mini", settings)
    assert isinstance(openai, ChatOpenAI) and openai.model_name == "gpt-4o-mini"
    assert openai.openai_api_base == "http://127.0.0.1:9/v1"
    with pytest.raises(ValueError, match="unknown model provider"):
        load_chat_model("anthropic:claude")
    with pytest.raises(FileNotFoundError):
        load_chat_model("local:/nowhere/model.gguf")


def test_roles_default_to_local_model_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOM_MODEL")
    monkeypatch.setenv("LOOM_MODELS__ROUTER", "fake:echo")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.model_for("writer") == "local:smollm2"
    assert settings.model_for("router") == "fake:echo"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert Settings().model_for("writer") == "openai:gpt-4o-mini"


def test_transient_errors_are_classified() -> None:
    class Status(Exception):
        def __init__(self, code: int) -> None:
            self.status_code = code

    assert is_transient_error(TimeoutError())
    assert is_transient_error(Status(429)) and is_transient_error(Status(503))
    assert not is_transient_error(Status(400))
    assert not is_transient_error(ValueError("bad"))
