"""The code checks on traces built from history in the API's shape: verdicts, reasons and the component blamed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from loom.checks import Verdict, check_sequence, code_checks, first_component, trace_from_history
from loom.datasets import Example
from loom.evaluators import apply as apply_evaluators
from loom.evaluators import load_evaluator
from loom.experiment_record import ExampleResult, RunOptions, compare, percentile, summarise
from loom.experiments import judge, rubric_finding


def checkpoint(next_: list[str], values: dict[str, Any], results: dict[str, Any] | None = None) -> dict[str, Any]:
    tasks = [{"name": name, "result": (results or {}).get(name), "interrupts": []} for name in next_]
    return {"next": next_, "values": values, "tasks": tasks}


def ai(text: str, *tools: str, id: str) -> dict[str, Any]:
    return {"type": "ai", "id": id, "content": text, "tool_calls": [{"name": t, "args": {}, "id": t} for t in tools]}


HUMAN = {"type": "human", "id": "h", "content": "Where is order 7?"}
ROUTED = {"messages": [HUMAN], "route": {"specialist": "image_generator"}}
CALLED = {**ROUTED, "messages": [HUMAN, ai("", "make_image", id="a1")]}
ANSWERED = {**ROUTED, "messages": [*CALLED["messages"], ai("Here is a picture.", id="a2")]}
HISTORY = [  # newest first, as /threads/{id}/history answers
    checkpoint([], ANSWERED),
    checkpoint(["agent"], CALLED, {"agent": {"messages": [ANSWERED["messages"][-1]]}}),
    checkpoint(["agent"], ROUTED, {"agent": {"messages": [CALLED["messages"][-1]]}}),
    checkpoint(["router"], {"messages": [HUMAN]}, {"router": {"route": ROUTED["route"]}}),
    checkpoint(["__start__"], {}),
]


def run(expected: dict[str, Any]) -> tuple[dict[str, tuple[bool, str]], str | None]:
    trace = trace_from_history(HISTORY, {"values": ANSWERED, "next": []}, tokens=120, cost=None, latency_ms=900.0)
    findings = code_checks(Example.model_validate({"inputs": "Where is order 7?", "expected": expected}), trace)
    verdicts = {name: (f.verdict.passed, f.verdict.reason) for name, f in findings.items()}
    return verdicts, first_component(findings)


def test_the_earliest_broken_expectation_names_the_component() -> None:
    verdicts, component = run(
        {"state": {"route.specialist": "coder"}, "tools": ["search"], "contains": ["python"], "max_steps": 2}
    )
    assert verdicts == {
        "state": (False, "route.specialist is 'image_generator', expected 'coder'"),
        "tools": (False, "tools ['make_image'] do not subset-match ['search']"),
        "contains": (False, "answer lacks ['python']"),
        "max_steps": (False, "3 steps > 2"),
    }
    assert component == "router"


def test_later_failures_are_blamed_on_the_node_that_made_them() -> None:
    verdicts, component = run({"state": {"route.specialist": "image_generator"}, "not_contains": ["picture"]})
    assert verdicts["state"][0] and not verdicts["not_contains"][0] and component == "agent"
    _, component = run({"tools": ["search"], "tools_mode": "superset"})
    assert component == "agent"


def test_budgets_have_no_component_and_an_unpriced_cost_fails() -> None:
    verdicts, component = run({"max_tokens": 100, "max_cost_usd": 1.0, "max_latency_ms": 1000})
    assert verdicts == {
        "max_tokens": (False, "120 tokens > 100"),
        "max_cost_usd": (False, "unknown USD (a model without a price)"),
        "max_latency_ms": (True, "900 ms ≤ 1000"),
    }
    assert component is None


def test_the_four_match_modes_are_agentevals_modes() -> None:
    ran = [(0, "router"), (1, "agent"), (2, "tools"), (3, "agent")]

    def passes(expected: list[str], mode: Any) -> bool:
        return check_sequence("nodes", expected, mode, ran).verdict.passed

    assert passes(["router", "agent", "tools", "agent"], "strict")
    assert not passes(["router", "tools", "agent", "agent"], "strict")
    assert passes(["agent", "tools", "agent", "router"], "unordered")
    assert passes(["router", "agent", "tools"], "unordered") and not passes(["router", "agent"], "unordered")
    assert passes(["router", "agent"], "superset") and not passes(["router", "writer"], "superset")
    assert passes(["router", "agent", "tools", "writer"], "subset") and not passes(["router", "agent"], "subset")
    assert passes(["router", "agent", "tools"], "subset")  # agent ran twice: outside strict, names count once


def test_a_run_stopped_by_interrupt_counts_the_stopped_node() -> None:
    stopped = {"next": ["approve"], "values": ROUTED, "tasks": [{"name": "approve", "interrupts": [{"value": 1}]}]}
    history = [stopped, checkpoint(["router"], {"messages": [HUMAN]}, {"router": {}}), checkpoint(["__start__"], {})]
    trace = trace_from_history(history, {**stopped, "interrupts": [{"value": 1}]}, 0, 0.0, 1.0)
    example = Example.model_validate({"inputs": "x", "expected": {"nodes": ["router", "approve"], "interrupt": False}})
    findings = code_checks(example, trace)
    assert findings["nodes"].verdict.passed and trace.interrupted
    assert findings["interrupt"].verdict.reason == "stopped for approval before ['approve']"
    assert findings["interrupt"].component == "approve"


def test_a_node_that_raised_is_the_failed_runs_culprit() -> None:
    state = {"values": ROUTED, "next": ["agent"], "tasks": [{"name": "agent", "error": "ValueError('boom')"}]}
    trace = trace_from_history([state, *HISTORY[3:]], state, tokens=1, cost=0.0, latency_ms=1.0)
    assert trace.failed == ("agent",) and [node for _, node in trace.ran] == ["router", "agent"]


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 20.0 and percentile([10.0, 20.0, 30.0, 40.0], 95) == 40.0
    assert percentile([], 50) == 0.0


def mentions_picture(*, outputs: str, **_: Any) -> dict[str, Any]:
    return {"key": "picture", "score": "picture" in outputs, "comment": f"answer: {outputs}"}


async def test_custom_evaluators_from_a_file_or_a_module(tmp_path: Path) -> None:
    (tmp_path / "my_evals.py").write_text(
        "async def short(*, outputs, state, **_):\n"
        "    return [{'key': 'short', 'score': 0.0, 'comment': f'{len(outputs)} chars'},\n"
        "            {'key': 'routed', 'score': 1, 'comment': state['route']['specialist']}]\n"
    )
    references = ["./my_evals.py:short", "tests.loom.test_checks:mentions_picture"]
    evaluators = [await asyncio.to_thread(load_evaluator, reference) for reference in references]
    trace = trace_from_history(HISTORY, {"values": ANSWERED, "next": []}, tokens=1, cost=0.0, latency_ms=1.0)
    findings = await apply_evaluators(evaluators, Example.model_validate({"inputs": "x"}), trace)
    assert {key: (f.verdict.passed, f.verdict.reason, f.component) for key, f in findings.items()} == {
        "short": (False, "18 chars", "agent"),
        "routed": (True, "image_generator", None),
        "picture": (True, "answer: Here is a picture.", None),
    }
    with pytest.raises(ValueError, match="has no function 'nope'"):
        await asyncio.to_thread(load_evaluator, "./my_evals.py:nope")
    with pytest.raises(ValueError, match=r"write ./file.py:function or module:function"):
        load_evaluator("my_evals.py")


def result(id: str, repetition: int, passed: bool, component: str | None, latency: float) -> ExampleResult:
    checks = {"state": Verdict(passed=passed, reason="r"), "contains": Verdict(passed=True, reason="r")}
    return ExampleResult(
        id=id, repetition=repetition, passed=passed, checks=checks, component=component, run_id="r", thread_id="t",
        status="success", tokens=10, latency_ms=latency, cost_usd=0.001,
    )  # fmt: skip


def test_repetitions_are_rows_of_their_own_and_compare_matches_them() -> None:
    options = RunOptions(dataset="d.jsonl", graph="g", assistant_id="g", repetitions=2)
    rows = [result("a", 0, True, None, 100), result("b", 0, False, "router", 300),
            result("a", 1, False, "writer", 200), result("b", 1, False, "router", 400)]  # fmt: skip
    before = summarise("before", options, rows)
    assert (before.score, before.checks, before.components) == (
        0.25,
        {"contains": 1.0, "state": 0.25},
        {"router": 2, "writer": 1},
    )
    assert (before.latency_p50_ms, before.latency_p95_ms, before.cost_per_example_usd, before.tokens) == (
        200,
        400,
        0.001,
        40,
    )
    after = summarise("after", options, [*rows[:2], result("a", 1, True, None, 200), rows[3]])
    changes = compare(before, after)
    assert [(c.id, c.repetition, c.before, c.after, c.checks) for c in changes] == [
        ("a", 1, False, True, {"state": (False, True)})
    ]


async def test_the_judge_scores_each_criterion_on_a_loom_model_and_survives_a_bad_answer(tmp_path: Path) -> None:
    """Loom's own structured-output path (the fake model here, the embedded model the same way) under openevals."""
    script = tmp_path / "judge.json"
    script.write_text(json.dumps([
        {"json": {"reasoning": "It shows a picture.", "score": True}},
        {"json": {"reasoning": "No price is given.", "score": False}},
        "not JSON at all",
    ]))  # fmt: skip
    example = Example.model_validate(
        {"inputs": "Draw me a cat", "rubric": ["Shows a picture", "Says a price", "Is kind"]}
    )
    trace = trace_from_history(HISTORY, {"values": ANSWERED, "next": []}, tokens=1, cost=0.0, latency_ms=1.0)
    scores = await judge(f"fake:{script}", example, trace)
    assert [(s.criterion, s.score) for s in scores] == [("Shows a picture", 1), ("Says a price", 0), ("Is kind", 0)]
    assert scores[1].reason == "No price is given." and scores[2].reason.startswith("the judge failed: ")
    finding = rubric_finding(scores, trace)
    assert (finding.verdict.passed, finding.verdict.reason, finding.component) == (
        False, "1/3 criteria met; not: 'Says a price'", "agent"
    )  # fmt: skip


def test_a_value_left_before_the_run_left_its_path_is_blamed_on_the_divergence() -> None:
    """Support's escalation: intake opens the request, triage picks ``general``, ``escalate`` never runs."""
    opened = {"request": {"status": "open"}}
    triaged = {**opened, "triage": {"category": "general"}}
    history = [
        checkpoint([], triaged),
        checkpoint(["general"], triaged, {"general": {}}),
        checkpoint(["triage"], opened, {"triage": {"triage": triaged["triage"]}}),
        checkpoint(["intake"], {}, {"intake": opened}),
        checkpoint(["__start__"], {}),
    ]
    trace = trace_from_history(history, {"values": triaged, "next": []}, tokens=1, cost=0.0, latency_ms=1.0)
    state = {"triage.category": "escalation", "request.status": "escalated"}
    alone = code_checks(Example.model_validate({"inputs": "x", "expected": {"state": state}}), trace)
    assert first_component(alone) == "intake"  # without the nodes it should have run, the first wrong write
    expected = {"state": state, "nodes": ["intake", "triage", "escalate"], "nodes_mode": "superset"}
    findings = code_checks(Example.model_validate({"inputs": "x", "expected": expected}), trace)
    assert (findings["state"].component, findings["nodes"].component, first_component(findings)) == (
        "triage", "triage", "triage"
    )  # fmt: skip
