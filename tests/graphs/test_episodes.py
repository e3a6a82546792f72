"""Episodic memory of plan_execute: a run that went wrong leaves a lesson the next similar goal's planner reads."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from graphs.plan_execute import build_graph, plan_tools
from nodes.plan_execute.episodes import LESSONS_HEADER
from nodes.plan_execute.execution import PlanFailed
from services.memory import EPISODES
from state.common import Permission, RunContext
from tests.fixtures.env import SetEnv
from tests.fixtures.models import ScriptedModels


@tool
def lookup_supplier(item_id: str) -> dict[str, str]:
    """Ask the supplier's system about an item."""
    raise PermissionError("the supplier API needs an order_id, not an item_id")


def plan(*steps: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "steps": [{"id": i, "description": f"do {i}", "tool": t, "arguments": a, "depends_on": []} for i, t, a in steps]
    }


async def run(graph: Any, payload: Any, thread: str, permissions: tuple[Permission, ...] = ("read",)) -> Any:
    payload = {"messages": [HumanMessage(payload)]} if isinstance(payload, str) else payload
    config = {"configurable": {"thread_id": thread}}
    return await graph.ainvoke(payload, config, context=RunContext(permissions=permissions))


def planner_system_prompt(models: ScriptedModels, call: int = -1) -> str:
    return str(models.models["planner"].calls[call][0].text)


async def test_a_failed_step_becomes_a_lesson_for_the_next_similar_goal(
    set_env: SetEnv, checkpointer: BaseCheckpointSaver[str]
) -> None:
    set_env(LOOM_PLAN_MAX_REPLANS="0")
    store = InMemoryStore()
    supplier = plan(("step_1", "lookup_supplier", {"item_id": "SG-101"}))
    models = ScriptedModels(planner=[supplier, supplier])
    graph = build_graph(models, checkpointer, [*plan_tools(), lookup_supplier], store)

    with pytest.raises(PlanFailed):  # the run ends error, its episode stored first
        await run(graph, "Who is the supplier of SG-101?", "t1")
    [episode] = await store.asearch(EPISODES)
    assert LESSONS_HEADER not in planner_system_prompt(models)
    assert episode.value["outcome"] == "failure" and episode.value["steps"] == ["step_1: lookup_supplier"]
    assert episode.value["goal"] == "Who is the supplier of SG-101?" and episode.value["source_thread"] == "t1"
    lesson = episode.value["lesson"]
    assert lesson.startswith('lookup_supplier failed with {"item_id": "SG-101"}') and "needs an order_id" in lesson

    with pytest.raises(PlanFailed):
        await run(graph, "Find the supplier of SG-105", "t2")
    assert f"{LESSONS_HEADER}\n- {lesson}" in planner_system_prompt(models)
    await run(graph, "What do round sunglasses cost?", "t3")  # shares no word with the failed goal
    unrelated = (await graph.aget_state({"configurable": {"thread_id": "t3"}})).values
    assert unrelated["lessons"] == [] and unrelated["plan_source"] == "rules"
    assert [e.value["outcome"] for e in await store.asearch(EPISODES)].count("failure") == 2


async def test_a_rejected_approval_with_a_reason_becomes_a_lesson(checkpointer: BaseCheckpointSaver[str]) -> None:
    store = InMemoryStore()
    refund = plan(("step_1", "process_return", {"order_id": "ORD-1001", "item_id": "SG-103", "reason": "too big"}))
    models = ScriptedModels(planner=[refund, refund])
    graph = build_graph(models, checkpointer, store=store)
    await run(graph, "Return the aviators from ORD-1001", "t1", ("read", "write"))
    reject = {"decisions": [{"type": "reject", "message": "ask the store before any return"}]}
    await run(graph, Command(resume=reject), "t1", ("read", "write"))
    [episode] = await store.asearch(EPISODES)
    assert episode.value["outcome"] == "failure" and "ask the store before any return" in episode.value["lesson"]

    await run(graph, "Return the round sunglasses from ORD-1002", "t2", ("read", "write"))
    assert "A human rejected the plan" in planner_system_prompt(models)
