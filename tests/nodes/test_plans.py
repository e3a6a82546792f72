"""Plan validation, references, DAG readiness, the retry schedule and the rule planner, without a graph."""

from __future__ import annotations

from typing import Any

import pytest

from loom.settings import get_settings
from nodes.plan_execute.plans import (
    StepInputError,
    blocked_by,
    dependencies,
    find_cycle,
    plan_json_schema,
    ready_steps,
    resolve_refs,
    validate_plan,
)
from nodes.plan_execute.rules import shop_plan
from nodes.plan_execute.steps import retry_delays
from nodes.tools.code import run_python
from nodes.tools.shop import SHOP_TOOLS
from state.common import RunContext
from state.plan_execute import StepSpec

TOOLS = {tool.name: tool for tool in [*SHOP_TOOLS, run_python]}


def step(
    step_id: str, tool: str | None = "get_item_price", depends_on: list[str] | None = None, **args: Any
) -> StepSpec:
    return StepSpec(id=step_id, description=step_id, tool=tool, arguments=args, depends_on=depends_on or [])


def errors(plan: list[StepSpec], context: RunContext | None = None, max_steps: int = 5) -> list[str]:
    return validate_plan(plan, TOOLS, context or RunContext(), max_steps=max_steps).errors


def test_a_chained_plan_with_references_is_valid() -> None:
    plan = [
        step("step_1", "get_item_descriptions", category="sunglasses", filter="round"),
        step("step_2", "check_inventory", item_ids={"$ref": "step_1.item_ids"}),
        step("step_3", "get_item_price", ["step_2"], item_ids={"ref": "step_2.in_stock_ids"}),
    ]
    result = validate_plan(plan, TOOLS, RunContext(), max_steps=5)
    assert result.errors == [] and result.risky == [] and result.ungranted == []
    assert dependencies(plan[1]) == ["step_1"]  # a reference is a dependency even if undeclared


def test_unknown_tools_are_named_with_the_valid_ones() -> None:
    [error] = errors([step("step_1", "find_cheapest", query="x")])
    assert "step_1 uses unknown tool 'find_cheapest'" in error
    assert "check_inventory(item_ids: list[string])" in error


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"item_ids": "SG-101"}, "step_1 argument 'item_ids': Input should be a valid list"),
        ({"item_ids": [1.5]}, "step_1 argument 'item_ids.0': Input should be a valid string"),
        ({}, "step_1 argument 'item_ids': Field required"),
        ({"item_ids": [], "currency": "EUR"}, "step_1 passes unknown argument 'currency'"),
    ],
)
def test_argument_types_are_checked_against_the_tool_schema(arguments: dict[str, Any], expected: str) -> None:
    found = errors([step("step_1", "get_item_price", **arguments)])
    assert any(e.startswith(expected) for e in found), found


def test_referenced_arguments_are_checked_only_once_resolved() -> None:
    plan = [step("step_1", "get_item_descriptions", category="hats"), step("step_2", item_ids={"$ref": "step_1"})]
    assert errors(plan) == []


def test_missing_and_cyclic_dependencies_are_rejected() -> None:
    found = errors(
        [
            step("step_1", depends_on=["step_3"], item_ids=[]),
            step("step_2", depends_on=["step_9"], item_ids=[]),
            step("step_3", item_ids={"$ref": "step_1.prices"}),
        ]
    )
    assert "step_2 depends on 'step_9', which is not a step of this plan." in found
    assert any(e.startswith("Steps step_1 → step_3 → step_1") for e in found), found


def test_self_references_duplicates_and_size_are_rejected() -> None:
    found = errors(
        [step("a", depends_on=["a"], item_ids=[]), step("a", item_ids=[]), step("b", item_ids=[])], max_steps=2
    )
    assert "a depends on itself." in found
    assert "Step id 'a' is used more than once; give every step its own id." in found
    assert "The plan has 3 steps; the limit is 2. Merge or drop steps." in found


def test_write_tools_are_risky_and_ungranted_without_the_write_permission() -> None:
    plan = [step("step_1", "process_return", order_id="ORD-1001", item_id="SG-103")]
    read_only = validate_plan(plan, TOOLS, RunContext(permissions=("read",)), max_steps=5)
    assert read_only.risky == ["step_1"]
    assert read_only.ungranted == [
        "step_1 uses process_return, which needs the 'write' permission; this run has: read."
    ]
    granted = validate_plan(plan, TOOLS, RunContext(permissions=("read", "write")), max_steps=5)
    assert granted.risky == ["step_1"] and granted.ungranted == []


def test_references_resolve_to_whole_results_fields_and_list_items() -> None:
    outputs = {"step_1": {"items": [{"name": "Lennon"}], "item_ids": ["SG-101"]}}
    arguments = {"ids": {"$ref": "step_1.item_ids"}, "first": {"ref": "step_1.items.0.name"}, "all": {"$ref": "step_1"}}
    assert resolve_refs(arguments, outputs) == {"ids": ["SG-101"], "first": "Lennon", "all": outputs["step_1"]}
    with pytest.raises(StepInputError, match=r"no 'prices' in the result of step_1 \(it has: items, item_ids\)"):
        resolve_refs({"$ref": "step_1.prices"}, outputs)


def test_ready_steps_form_waves_and_failures_block_their_dependents() -> None:
    plan = [
        step("a", item_ids=[]),
        step("b", item_ids=[]),
        step("c", depends_on=["a", "b"], item_ids=[]),
        step("d", item_ids={"$ref": "c"}),
        step("e", item_ids=[]),
    ]
    assert [s["id"] for s in ready_steps(plan, done=set(), failed=set())] == ["a", "b", "e"]
    assert [s["id"] for s in ready_steps(plan, done={"a", "b", "e"}, failed=set())] == ["c"]
    assert blocked_by(plan, {"b"}) == ["c", "d"]
    assert find_cycle(plan) is None


def test_retry_schedule_is_seed_004s_by_default() -> None:
    assert retry_delays(4, 0.1, 2.0) == [0.0, 0.1, 0.2, 0.4]
    settings = get_settings()
    default = retry_delays(settings.plan_step_retries, settings.plan_retry_initial_s, settings.plan_retry_backoff)
    assert default == [0.0, 0.1, 0.2]  # seed 003's budget: 3 retries per step


def test_decoding_schema_allows_only_registered_tools_and_step_ids() -> None:
    schema = plan_json_schema(TOOLS, max_steps=3)
    shapes = schema["properties"]["steps"]["items"]["anyOf"]
    assert schema["properties"]["steps"]["maxItems"] == 3
    assert {s["properties"]["tool"].get("const") for s in shapes} == {*TOOLS, None}
    assert all(s["properties"]["id"] == {"type": "string", "enum": ["step_1", "step_2", "step_3"]} for s in shapes)
    price = next(s for s in shapes if s["properties"]["tool"].get("const") == "get_item_price")
    assert price["properties"]["arguments"]["required"] == ["item_ids"]


def test_rule_planner_chains_the_sunglasses_request() -> None:
    plan = shop_plan(
        "Find round sunglasses that are in stock and tell me their prices",
        ["bags", "hats", "sunglasses"],
        ["aviator", "round"],
    )
    assert plan is not None
    assert [(s.id, s.tool, s.depends_on) for s in plan] == [
        ("step_1", "get_item_descriptions", []),
        ("step_2", "check_inventory", ["step_1"]),
        ("step_3", "get_item_price", ["step_2"]),
    ]
    assert plan[0].arguments == {"category": "sunglasses", "filter": "round"}
    assert plan[2].arguments == {"item_ids": {"$ref": "step_2.in_stock_ids"}}


@pytest.mark.parametrize(
    "request_text",
    ["I want to return my sunglasses from order ORD-1001", "Write me a poem about hats", "Compare watch prices"],
)
def test_rule_planner_leaves_unplain_requests_to_the_model(request_text: str) -> None:
    assert shop_plan(request_text, ["hats", "sunglasses", "watches"], ["round"]) is None
