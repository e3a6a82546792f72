"""Support triage: keyword stage for clear tickets, constrained model output for the rest, escalation cues."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.support.triage import priority_cue, triage_request, wording_cue
from tests.fixtures.models import ScriptedModels

CONFIG: Any = {"configurable": {}}


@pytest.mark.parametrize(
    ("text", "category", "priority"),
    [
        ("My payment failed and I can't access my account", "billing", "high"),
        ("I was charged twice for my subscription this month", "billing", "high"),
        ("Can I get a receipt for my last invoice?", "billing", "low"),  # a bare question
        ("I was charged for the annual plan. Please refund it.", "billing", "medium"),  # no cue: medium
        ("The API returns 500 errors on every call", "technical", "medium"),
        ("Our webhook integration stopped syncing, it's broken", "technical", "high"),
        ("How do I find the documentation for exports?", "general", "low"),  # general: low without a cue
        ("Please send me your security documentation by tomorrow.", "general", "medium"),
        ("I need this fixed immediately, I have a deadline!", "escalation", "critical"),
        ("This is unacceptable, I want to speak to a manager", "escalation", "high"),  # an escalation: at least high
        ("Data from another company shows up in our reports", "escalation", "critical"),
    ],
)
async def test_clear_tickets_are_triaged_by_keywords(
    scripted: type[ScriptedModels], text: str, category: str, priority: str
) -> None:
    models = scripted()
    decision, usage = await triage_request(text, models, 0.6, CONFIG)
    assert (decision["category"], decision["priority"], decision["stage"]) == (category, priority, "keywords")
    assert decision["suggested_agent"] == category
    assert usage is None and not models.models


async def test_model_stage_is_typed_and_urgent_wording_raises_its_priority(scripted: type[ScriptedModels]) -> None:
    answer = {"category": "general", "priority": "low", "reasoning": "a question", "suggested_agent": "general"}
    models = scripted(triage=[answer])
    always_ask = 1.01  # above any keyword confidence, so the model decides
    decision, usage = await triage_request("Hello, quick thing, please reply asap", models, always_ask, CONFIG)
    assert (decision["category"], decision["priority"], decision["stage"]) == ("general", "critical", "llm")
    assert usage is not None and usage["node"] == "triage"


@pytest.mark.parametrize(
    "reply",
    [
        "not json",
        {"category": "sales", "priority": "low", "reasoning": "x", "suggested_agent": "general"},
        {"category": "billing", "priority": "urgent", "reasoning": "x", "suggested_agent": "billing"},
    ],
)
async def test_unusable_model_output_falls_back_to_general_medium(scripted: type[ScriptedModels], reply: Any) -> None:
    decision, _ = await triage_request("Hello there", scripted(triage=[reply]), 0.6, CONFIG)
    assert (decision["category"], decision["priority"], decision["stage"]) == ("general", "medium", "fallback")
    assert decision["reasoning"].startswith("triage output unusable")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Please fix it ASAP", "urgency"),
        ("It's still not working after your last fix", "repeated failure"),
        ("This is the third time I'm writing about this", "repeated failure"),
        ("Frankly this is ridiculous", "anger"),
    ],
)
def test_wording_cues_name_what_calls_for_escalation(text: str, kind: str) -> None:
    cue = wording_cue(text)
    assert cue is not None and kind in cue


def test_calm_wording_has_no_cue_and_no_priority_change() -> None:
    text = "Could you tell me which plans include SSO?"
    assert wording_cue(text) is None and priority_cue(text) is None
