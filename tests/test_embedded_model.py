"""One end-to-end run on the real embedded model (SmolLM2-135M via llama.cpp), offline."""

from __future__ import annotations

import asyncio
import json

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from graphs.assistant import build_graph
from loom.settings import get_settings
from nodes.assistant.router import router_instructions
from nodes.common.routing import choose_label
from nodes.models import settings_models
from state.assistant import SPECIALISTS
from state.common import RunContext

pytestmark = pytest.mark.embedded_model


@pytest.fixture(autouse=True)
def embedded_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_MODEL", "local:smollm2")
    monkeypatch.setenv("LOOM_MODEL_MAX_TOKENS", "192")  # the route JSON, reason ≤ 120 chars, always fits
    get_settings.cache_clear()


async def test_constrained_router_output_is_always_a_valid_label() -> None:
    choice, error, usage = await choose_label(
        await asyncio.to_thread(settings_models, "router"),
        router_instructions(SPECIALISTS),
        [HumanMessage("Help me understand last week's numbers")],
        SPECIALISTS,
        node="router",
        config={},
    )
    assert choice is not None, error
    assert choice.label in SPECIALISTS
    assert usage["model"] == "local:smollm2" and usage["output_tokens"] > 0


async def test_calendar_request_end_to_end(checkpointer: BaseCheckpointSaver[str]) -> None:
    """By default the reply lists the events themselves; the model routes and calls tools only where needed."""
    graph = build_graph(checkpointer=checkpointer)
    state = await graph.ainvoke(
        {"messages": [HumanMessage("Search my calendar for AI events")]},
        {"configurable": {"thread_id": "smoke"}},
        context=RunContext(),
    )
    tool_result = next(m for m in state["messages"] if isinstance(m, ToolMessage))
    assert "AI Workshop" in {e["title"] for e in json.loads(tool_result.text)["results"]}
    answer = state["messages"][-1]
    assert answer.type == "ai" and "- AI Workshop · " in answer.text


async def test_the_model_writes_the_answer_when_quoting_is_off(
    checkpointer: BaseCheckpointSaver[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOM_QUOTE_TOOL_RESULTS", "false")
    get_settings.cache_clear()
    graph = build_graph(checkpointer=checkpointer)
    state = await graph.ainvoke(
        {"messages": [HumanMessage("Search my calendar for AI events")]},
        {"configurable": {"thread_id": "smoke"}},
        context=RunContext(),
    )
    answer = state["messages"][-1]
    assert answer.type == "ai" and answer.text.strip() and not answer.tool_calls
    assert state["usage"][-1]["model"] == "local:smollm2" and state["usage"][-1]["node"] == "workspace_agent"
