"""One structured-output helper: a failure is logged, counted and returned with its usage; the caller decides."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, Field

from nodes.models.fake import FakeChatModel
from nodes.models.outputs import ask_structured, openai_strict_schema, parse_failures


class Verdict(BaseModel):
    label: str
    reason: str = Field(default="", max_length=20)


async def test_a_parsed_answer_comes_with_its_usage() -> None:
    model = FakeChatModel(replies=[{"label": "ok", "reason": "fine"}])
    reply = await ask_structured(model, Verdict, [HumanMessage("judge")], node="judge", config={})
    assert reply.value == Verdict(label="ok", reason="fine") and reply.error == ""
    assert reply.usage["node"] == "judge" and reply.usage["model"] == "fake"


async def test_a_parse_failure_is_logged_counted_and_keeps_the_usage(caplog: pytest.LogCaptureFixture) -> None:
    model = FakeChatModel(replies=["this is not JSON at all"])
    before = parse_failures().get("unit_judge", 0)
    with caplog.at_level(logging.WARNING, logger="nodes.models.outputs"):
        reply = await ask_structured(model, Verdict, [HumanMessage("judge")], node="unit_judge", config={})
    assert reply.value is None and reply.error
    assert reply.usages == [reply.usage] and reply.usage["node"] == "unit_judge" and reply.usage["output_tokens"] > 0
    assert parse_failures()["unit_judge"] == before + 1
    assert "structured output failed in unit_judge" in caplog.text


async def test_bounds_the_strict_schema_cannot_carry_are_still_checked() -> None:
    model = FakeChatModel(replies=[{"label": "ok", "reason": "far too long a reason for the field"}])
    reply = await ask_structured(model, Verdict, [HumanMessage("judge")], node="unit_bounds", config={})
    assert reply.value is None and "at most 20 characters" in reply.error


def test_strict_schema_closes_objects_requires_everything_and_drops_what_openai_refuses() -> None:
    strict = openai_strict_schema(Verdict.model_json_schema())
    assert strict["additionalProperties"] is False and strict["required"] == ["label", "reason"]
    assert strict["properties"]["reason"] == {"anyOf": [{"type": "string", "title": "Reason"}, {"type": "null"}]}


async def test_an_answer_cut_off_by_max_tokens_is_a_counted_failure_with_its_usage(openai_server: Any) -> None:
    """OpenAI's SDK raises on ``finish_reason: length``; the node still gets a reply it can fall back from."""
    from nodes.models import model_for, settings_models
    from tests.fixtures.openai_server import Reply

    openai_server.add(Reply(content='{"label": "ok", "reason": "and then it went on and', cut_off=True))
    before = parse_failures().get("unit_cut", 0)
    model = await model_for(settings_models, "judge")
    reply = await ask_structured(model, Verdict, [HumanMessage("judge")], node="unit_cut", config={})
    assert reply.value is None and "cut off" in reply.error
    assert reply.usage["output_tokens"] > 0 and reply.usage["model"] == "gpt-4o-mini"
    assert parse_failures()["unit_cut"] == before + 1
