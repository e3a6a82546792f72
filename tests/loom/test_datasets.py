"""The dataset format and the committed golden sets: every file loads, and names only what its graph has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphs.plan_execute import plan_tools
from loom.datasets import (
    DatasetError,
    Example,
    GraphNames,
    graph_names,
    load_dataset,
    names_problems,
    state_expectations,
)
from nodes.team.code_reflection import HARNESS
from server.registry import read_config
from services.sandbox.runner import run_python

ROOT = Path(__file__).resolve().parents[2]
EVALS = ROOT / "evals"
DATASETS = sorted(EVALS.glob("*/*.jsonl"))
EXTRA_TOOLS = {"plan_execute": [tool.name for tool in plan_tools()]}
"""Tools a graph calls outside a ToolNode: plan_execute's step runner calls its registry directly."""
MINIMUM = {"assistant": 60, "support": 40, "plan_execute": 15, "supervisor": 10, "pipeline": 10, "code_reflection": 10}
"""Examples per graph, tuning and held-out parts together, as issue 25 asks."""


def names_of(graph_id: str) -> GraphNames:
    spec = read_config((ROOT / "langgraph.json").resolve())[graph_id]
    return graph_names(spec.load(), EXTRA_TOOLS.get(graph_id, ()))


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_graph_has_a_tuning_and_a_held_out_part_of_the_size_asked_for() -> None:
    served = set(read_config((ROOT / "langgraph.json").resolve()))
    assert {d.name for d in EVALS.iterdir() if d.is_dir()} == served
    for graph_id, minimum in MINIMUM.items():
        golden, holdout = (load_dataset(EVALS / graph_id / f"{part}.jsonl") for part in ("golden", "holdout"))
        assert len(golden) + len(holdout) >= minimum, graph_id
        assert holdout, graph_id
        overlap = {json.dumps(e.inputs, sort_keys=True) for e in golden} & {
            json.dumps(e.inputs, sort_keys=True) for e in holdout
        }
        assert not overlap, f"{graph_id}: in both parts: {overlap}"


@pytest.mark.parametrize("path", DATASETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_committed_dataset_names_only_nodes_tools_and_state_its_graph_has(path: Path) -> None:
    names = names_of(path.parent.name)
    problems = [f"{e.id}: {p}" for e in load_dataset(path) for p in names_problems(e, names)]
    assert problems == []


def test_a_renamed_node_tool_or_state_value_is_named() -> None:
    example = Example.model_validate(
        {
            "inputs": "Why was I charged twice?",
            "expected": {
                "nodes": ["intake", "triage", "billing_agent"],
                "tools": ["issue_refund", "refund_invoice"],
                "state": {"triage.category": "billling", "triage.mood": "angry", "request.status": "escalated"},
            },
        }
    )
    assert names_problems(example, names_of("support")) == [
        "expected.nodes: no node 'billing_agent'",
        "expected.tools: no tool 'refund_invoice'",
        "expected.state: triage.category is never 'billling' (allowed: 'billing', 'escalation', 'general', "
        "'technical')",
        "expected.state: no state path 'triage.mood'",
    ]


def test_list_items_and_nested_records_are_reached_by_dotted_paths() -> None:
    example = Example.model_validate(
        {
            "inputs": "x",
            "expected": {"state": {"failures.0.tool": "get_item_price", "report.status": "rejected", "plan.x": 1}},
        }
    )
    assert names_problems(example, names_of("plan_execute")) == ["expected.state: no state path 'plan.x'"]


def test_bad_lines_are_reported_as_file_line_field_message(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        '{"id": "a", "inputs": "hello"}',
        '{"inputs": "x", "expected": {"nodes": ["router"], "nodes_mode": "prefix"}}',
        '{"inputs": "y", "expected": {"nodez": ["router"]}}',
        "",
        '{"inputs": "z",',
        '["not", "an", "object"]',
        '{"id": "a", "inputs": "again"}',
        '{"inputs": ""}',
        '{"inputs": "w", "expected": {"tools_mode": "strict", "max_steps": 0, "interrupt": "yes"}}',
        '{"inputs": "v", "rubric": ["fine", ""], "expected": {"state": {"triage..category": "x"}}}',
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert caught.value.problems == [
        f"{path}:2: expected.nodes_mode: Input should be 'subset', 'strict', 'unordered' or 'superset'",
        f"{path}:3: expected.nodez: Extra inputs are not permitted",
        f"{path}:5: json: Expecting property name enclosed in double quotes at column 16",
        f"{path}:6: json: an example is one JSON object, not list",
        f"{path}:7: id: duplicate id 'a' (first at {path}:1)",
        f"{path}:8: inputs: must be the user's message (a non-empty string) or the graph's input",
        f"{path}:9: expected.interrupt: Input should be a valid boolean",
        f"{path}:9: expected.max_steps: Input should be greater than 0",
        f"{path}:10: expected.state.triage..category: String should match pattern "
        "'^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z0-9_]+)*$'",
        f"{path}:10: rubric.1: String should have at least 1 character",
    ]


def test_a_mode_without_its_list_is_refused(tmp_path: Path) -> None:
    path = write_lines(tmp_path, '{"inputs": "w", "expected": {"tools_mode": "strict"}}')
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: expected: tools_mode is given without tools"):
        load_dataset(path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="has no examples"):
        load_dataset(write_lines(tmp_path, "", "  "))


def test_ids_come_from_the_inputs_when_absent_and_stay_the_same(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        '{"inputs": {"messages": [{"role": "user", "content": "hi"}], "tests": "t"}}',
        '{"inputs": "Write a haiku", "expected": {"contains": ["moon"]}}',
        '{"id": "mine", "inputs": "Write a haiku"}',
    )
    first = [e.id for e in load_dataset(path)]
    corrected = write_lines(
        tmp_path,
        '{"inputs": {"tests": "t", "messages": [{"role": "user", "content": "hi"}]}}',
        '{"inputs": "Write a haiku", "expected": {"contains": ["autumn"]}}',
        '{"id": "mine", "inputs": "Write a haiku"}',
    )
    assert [e.id for e in load_dataset(corrected)] == first
    assert first[0].startswith("ex-") and first[1].startswith("ex-") and first[0] != first[1]
    assert first[2] == "mine"


def test_two_examples_with_the_same_inputs_need_ids(tmp_path: Path) -> None:
    path = write_lines(tmp_path, '{"inputs": "same"}', '{"inputs": "same", "rubric": ["other"]}')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: id: duplicate id .ex-[0-9a-f]{12}. \(first at .*:1\)"):
        load_dataset(path)


def code_tasks() -> list[Example]:
    return [e for part in ("golden", "holdout") for e in load_dataset(EVALS / "code_reflection" / f"{part}.jsonl")]


@pytest.mark.parametrize("example", code_tasks(), ids=lambda e: e.id)
def test_a_code_task_s_tests_pass_in_the_sandbox_with_its_reference_solution(example: Example) -> None:
    """So a failing code_reflection run is the model's fault, never an impossible or wrong test."""
    inputs: Any = example.inputs
    files = {
        "solution.py": str(example.metadata["reference_solution"]),
        "test_solution.py": f"from solution import *\n\n{inputs['tests']}",
    }
    result = run_python(HARNESS, files=files)
    assert result.ok, result.stdout + result.stderr
    assert " passed, 0 failed" in result.stdout


def test_expectations_from_a_final_state_keep_its_short_values_as_dotted_paths() -> None:
    values = {
        "triage": {"category": "billing", "priority": 2, "escalate": False, "note": None},
        "messages": [{"role": "user", "content": "refund"}],
        "answer": "x" * 201,
        "score": float("nan"),
        "bad key": "left out",
        "done": True,
    }
    assert state_expectations(values) == {
        "triage.category": "billing", "triage.priority": 2, "triage.escalate": False, "done": True
    }  # fmt: skip
    Example.model_validate({"inputs": "refund", "expected": {"state": state_expectations(values)}})
