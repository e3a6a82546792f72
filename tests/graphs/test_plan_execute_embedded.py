"""The planner's constrained decoding on the real embedded model (SmolLM2-135M): one short call, a valid plan."""

from __future__ import annotations

import asyncio

import pytest

from graphs.plan_execute import plan_tools
from loom.settings import get_settings
from nodes.models import call_model, settings_models
from nodes.plan_execute.planner import planner_messages
from nodes.plan_execute.plans import plan_json_schema
from state.plan_execute import Plan, PlanExecuteState
from tests.fixtures.env import SetEnv

pytestmark = pytest.mark.embedded_model


async def test_the_135m_model_yields_a_schema_valid_plan(set_env: SetEnv) -> None:
    set_env(LOOM_MODEL="local:smollm2", LOOM_MODEL_MAX_TOKENS="200", LOOM_PLAN_MAX_STEPS="2")
    tools = {tool.name: tool for tool in plan_tools()}
    schema = plan_json_schema(tools, get_settings().plan_max_steps)
    model = await asyncio.to_thread(settings_models, "planner")  # starts the model server: off the loop
    structured = model.with_structured_output(schema, include_raw=True)
    state: PlanExecuteState = {
        "messages": [],
        "request": "Find round sunglasses that are in stock and tell me their prices",
    }
    messages = planner_messages(state, tools, 2)
    result, usage = await call_model(structured, messages, node="planner", config={})
    assert result["parsing_error"] is None, result["raw"].text
    plan = Plan.model_validate(result["parsed"])
    assert 1 <= len(plan.steps) <= 2
    assert all(step.tool is None or step.tool in tools for step in plan.steps)
    assert all(step.id in ("step_1", "step_2") for step in plan.steps)
    assert usage["model"] == "local:smollm2"
