"""Every bundled graph end to end on the path users take: ``openai:`` models through langchain-openai.

The model is a scripted OpenAI-compatible server (``openai_server`` in tests/conftest.py) that refuses
what OpenAI refuses, so a schema OpenAI would reject fails here with OpenAI's 400. Direct tool
dispatch is off, so every tool call in these runs is one the model made and langchain-openai parsed.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from graphs import assistant, code_reflection, pipeline, plan_execute, supervisor, support
from nodes.models.outputs import openai_strict_schema
from nodes.plan_execute.plans import plan_json_schema
from state.common import RunContext
from tests.fixtures.env import SetEnv
from tests.fixtures.openai_server import (
    ScriptedOpenAI,
    call,
    check_response_format,
    last_is_tool,
    schema_named,
    structured,
    system_says,
    text,
    tools_offered,
)
from tests.graphs.team_scripts import GOAL, served_research_and_article

JUDGE_PASS = {
    "answers_goal": True,
    "claims_supported": True,
    "clear_structure": True,
    "specific": True,
    "explanation": None,
}


@pytest.fixture(autouse=True)
def model_makes_every_call(openai_server: ScriptedOpenAI, set_env: SetEnv) -> None:
    set_env(LOOM_DIRECT_TOOL_DISPATCH="false")


def config(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def ask(text_: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text_)]}


def streamed(server: ScriptedOpenAI) -> bool:
    return any(body.get("stream") for body in server.requests)


def strict_formats(server: ScriptedOpenAI) -> list[str]:
    return [
        body["response_format"]["json_schema"]["name"]
        for body in server.requests
        if body.get("response_format") and body["response_format"]["json_schema"].get("strict")
    ]


def strict_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def test_the_fixture_refuses_what_openai_refuses() -> None:
    """The enforcement the graphs are held to: the plan schema as it was would have been refused."""
    from tests.fixtures.openai_server import InvalidRequest

    loose = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}, "required": ["a"]}
    for schema, message in [
        (loose, "'additionalProperties' is required"),
        ({**loose, "additionalProperties": False}, "'maxLength' is not permitted"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}, "Missing 'a'"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            check_response_format(strict_format("x", schema))
    with pytest.raises(InvalidRequest, match=r"json_schema\.name"):
        check_response_format({"type": "json_schema", "json_schema": {"schema": loose}})
    tools = {tool.name: tool for tool in plan_execute.plan_tools()}
    check_response_format(strict_format("Plan", openai_strict_schema(plan_json_schema(tools, 8))))


async def test_assistant_routes_by_model_and_charts_by_tool_call(
    openai_server: ScriptedOpenAI, checkpointer: BaseCheckpointSaver[str]
) -> None:
    openai_server.add(
        structured({"label": "document_analyst", "reason": "numbers to chart"}, when=schema_named("RouteChoice")),
        call("create_chart", {"data": "Q1 120, Q2 150, Q3 90", "title": "Sales"}, when=tools_offered("create_chart")),
        text("Q2 was the strongest quarter.", when=last_is_tool),
    )
    graph = assistant.build_graph(checkpointer=checkpointer)
    chunks: list[str] = []
    async for mode, data in graph.astream(
        ask("Can you help me with something?"),
        config(),
        context=RunContext(user_id="demo"),
        stream_mode=["messages", "values"],
    ):
        if mode == "messages" and data[1]["langgraph_node"] == "document_analyst":
            chunks.append(str(data[0].content))
    state = (await graph.aget_state(config())).values
    assert state["route"]["specialist"] == "document_analyst" and state["route"]["stage"] == "llm"
    (result,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert "max: Q2 (150)" in result.text and "/threads/t1/artifacts/chart-" in result.text
    assert state["messages"][-1].content == "Q2 was the strongest quarter." == "".join(chunks)
    assert streamed(openai_server) and strict_formats(openai_server) == ["RouteChoice"]
    assert not openai_server.unused and not openai_server.rejected


async def test_plan_execute_plans_with_a_strict_schema_and_reasons_with_tools(
    openai_server: ScriptedOpenAI, checkpointer: BaseCheckpointSaver[str]
) -> None:
    plan = {
        "steps": [
            {
                "id": "step_1",
                "description": "Find round sunglasses",
                "tool": "get_item_descriptions",
                "arguments": {"category": "sunglasses", "filter": "round"},
                "depends_on": [],
            },
            {
                "id": "step_2",
                "description": "Check which are in stock",
                "tool": "check_inventory",
                "arguments": {"item_ids": {"ref": "step_1.item_ids"}},
                "depends_on": ["step_1"],
            },
            {
                "id": "step_3",
                "description": "Compare what is in stock",
                "tool": None,
                "arguments": {},
                "depends_on": ["step_2"],
            },
        ]
    }
    openai_server.add(
        structured(plan, when=schema_named("Plan")),
        call("get_item_price", {"item_ids": ["SG-101", "SG-105"]}, when=tools_offered("get_item_price")),
        text("SG-101 is the cheaper one.", when=last_is_tool),
        text("Lennon Round Classic ($89.00) is in stock.", when=system_says("You answer the user's request")),
    )
    graph = plan_execute.build_graph(checkpointer=checkpointer)
    await graph.ainvoke(ask("Find round sunglasses that are in stock"), config())
    state = (await graph.aget_state(config())).values
    assert state["plan_source"] == "llm" and [s["tool"] for s in state["plan"]][:2] == [
        "get_item_descriptions",
        "check_inventory",
    ]
    assert state["results"]["step_2"]["output"]["in_stock_ids"] == ["SG-101", "SG-105"]
    assert state["results"]["step_3"]["output"] == "SG-101 is the cheaper one."
    assert state["messages"][-1].text == "Lennon Round Classic ($89.00) is in stock."
    assert strict_formats(openai_server) == ["Plan"]
    assert not openai_server.unused and not openai_server.rejected


async def test_supervisor_delegates_by_strict_decisions(openai_server: ScriptedOpenAI) -> None:
    decisions = [
        {"next": "researcher", "task": "Find passages on async programming", "pass_through": None},
        {"next": "writer", "task": "Write the article with citations", "pass_through": None},
        {"next": "finish", "task": None, "pass_through": "writer", "final_output": None},
    ]
    openai_server.add(
        *[structured(decision, when=schema_named("Decision")) for decision in decisions],
        *served_research_and_article(),
    )
    state = await supervisor.build_graph().ainvoke(ask(GOAL), config())
    assert [r["worker"] for r in state["reports"]] == ["researcher", "writer"]
    assert (state["finish_reason"], state["final_from"]) == ("completed", "writer")
    assert state["final_output"].startswith("# The impact of async programming") and len(state["sources"]) == 3
    assert strict_formats(openai_server) == ["Decision"] * 3
    assert not openai_server.unused and not openai_server.rejected


async def test_pipeline_reviews_with_a_strict_rubric(openai_server: ScriptedOpenAI) -> None:
    openai_server.add(
        *served_research_and_article(),
        structured(JUDGE_PASS, when=schema_named("ArticleJudgement")),
    )
    state = await pipeline.build_graph().ainvoke(ask(GOAL), config())
    [review] = state["reviews"]
    assert (state["finish_reason"], review["score"], review["judged"]) == ("approved", 1.0, True)
    assert state["article"].startswith("# The impact of async programming")
    assert strict_formats(openai_server) == ["ArticleJudgement"]
    assert not openai_server.unused and not openai_server.rejected


async def test_code_reflection_runs_the_strictly_structured_draft(openai_server: ScriptedOpenAI) -> None:
    code = "def mean(xs):\n    return sum(xs) / len(xs)\n"
    tests = "def test_mean():\n    assert mean([1, 2, 3]) == 2\n"
    openai_server.add(structured({"code": code, "tests": tests}, when=schema_named("CodeDraft")))
    state = await code_reflection.build_graph().ainvoke(ask("Write mean(xs), the arithmetic mean"), config())
    assert (state["finish_reason"], state["code"]) == ("passed", code)
    assert strict_formats(openai_server) == ["CodeDraft"]
    assert not openai_server.unused and not openai_server.rejected


async def test_support_triages_by_model_and_answers_from_account_tools(
    openai_server: ScriptedOpenAI, checkpointer: BaseCheckpointSaver[str]
) -> None:
    triage = {"category": "billing", "priority": "medium", "reasoning": "money", "suggested_agent": "billing"}
    openai_server.add(
        structured(triage, when=schema_named("TriageDecision")),
        call("list_invoices", {}, when=tools_offered("list_invoices")),
        text("Your latest invoice is listed above.", when=last_is_tool),
    )
    graph = support.build_graph(checkpointer=checkpointer)
    state = await graph.ainvoke(
        ask("Something looks off with what I paid, can you have a look?"),
        config(),
        context=RunContext(user_id="demo"),
    )
    assert state["triage"]["stage"] == "llm" and state["triage"]["category"] == "billing"
    (result,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert result.name == "list_invoices" and "INV-" in result.text
    assert state["messages"][-1].text == "Your latest invoice is listed above."
    assert strict_formats(openai_server) == ["TriageDecision"]
    assert not openai_server.unused and not openai_server.rejected
