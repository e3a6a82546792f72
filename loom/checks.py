"""The code checks of an example's ``expected`` keys, applied to one finished run, and who to blame for a failure.

A run is read as an HTTP client sees it (:class:`RunTrace`): the thread's checkpoints (``/history``,
oldest first) become :class:`Step`s, each the nodes that ran in one superstep, what they returned and
the state after. Every check gives a :class:`Finding`: its verdict with a one-line reason and, when it
failed, the step and component (node or tool) whose output first broke the expectation, seed 001's
error analysis. Node and tool sequences are compared by agentevals' trajectory match (the four modes as it
defines them); budgets (steps, tokens, cost, latency) have no component.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from agentevals.trajectory.match import create_trajectory_match_evaluator
from pydantic import BaseModel

from loom.datasets import Example, Expected, MatchMode

_MISSING = object()


class Verdict(BaseModel):
    """One check's outcome for one run."""

    passed: bool
    reason: str


@dataclass(frozen=True)
class Step:
    """One superstep of the run: the nodes that ran, what each returned, the state after it."""

    nodes: tuple[str, ...]
    results: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    name: str
    node: str
    step: int


@dataclass(frozen=True)
class RunTrace:
    """What a finished run left: its steps, final state, pending interrupt, usage and wall-clock time."""

    steps: list[Step]
    final: dict[str, Any]
    interrupted: bool
    pending: tuple[str, ...] = ()
    tokens: int = 0
    cost_usd: float | None = 0.0
    latency_ms: float = 0.0
    tool_calls: list[ToolCall] = field(default_factory=list)
    failed: tuple[str, ...] = ()
    """Nodes whose task ended in an error (a failed run's culprit)."""

    @property
    def ran(self) -> list[tuple[int, str]]:
        """(step index, node) for every node execution, in order."""
        return [(index, node) for index, step in enumerate(self.steps) for node in step.nodes]

    def answer(self) -> str:
        """The final answer: the last AI message's text."""
        return _answer_text(self.final.get("messages"))

    def answered_by(self) -> tuple[int | None, str | None]:
        """The step and node that wrote the final answer (the first step after which it no longer changed)."""
        text = self.answer()
        for index in range(len(self.steps) - 1, -1, -1):
            if _answer_text(self.steps[index].values.get("messages")) != text:
                step = min(index + 1, len(self.steps) - 1)
                return step, self.steps[step].nodes[0]
        return (0, self.steps[0].nodes[0]) if self.steps else (None, None)


@dataclass(frozen=True)
class Finding:
    """A check's verdict and, when it failed, where: the step index and the node or tool at fault."""

    verdict: Verdict
    step: int | None = None
    component: str | None = None


def trace_from_history(
    history: Sequence[dict[str, Any]], state: dict[str, Any], tokens: int, cost: float | None, latency_ms: float
) -> RunTrace:
    """Build a trace from ``/threads/{id}/history`` (newest first, as the API returns it) and the thread's state."""
    checkpoints = list(reversed(history))
    steps: list[Step] = []
    for before, after in pairwise(checkpoints):
        nodes = tuple(name for name in before.get("next", []) if not name.startswith("__"))
        if nodes:
            results = {task["name"]: task.get("result") for task in before.get("tasks", [])}
            steps.append(Step(nodes, results, after.get("values") or {}))
    last = checkpoints[-1] if checkpoints else {}
    stopped = [task["name"] for task in last.get("tasks", []) if task.get("interrupts") or task.get("error")]
    if stopped:  # a node that called interrupt() or raised ran up to there: it is part of the trajectory
        steps.append(Step(tuple(stopped), {}, last.get("values") or {}))
    pending = tuple(state.get("next") or ())
    interrupted = bool(state.get("interrupts")) or any(task.get("interrupts") for task in state.get("tasks", []))
    trace = RunTrace(steps, state.get("values") or {}, interrupted, pending, tokens, cost, latency_ms)
    failed = tuple(task["name"] for task in state.get("tasks", []) if task.get("error"))
    return replace(trace, tool_calls=_tool_calls(trace), failed=failed)


def _tool_calls(trace: RunTrace) -> list[ToolCall]:
    """Each tool call of an AI message, with the node and step that first wrote the message."""
    seen: set[str] = set()
    calls: list[ToolCall] = []
    for index, step in enumerate(trace.steps):
        for message in step.values.get("messages") or []:
            key = str(message.get("id") or json.dumps(message, sort_keys=True, default=str))
            if key in seen or not isinstance(message, dict):
                continue
            seen.add(key)
            for call in message.get("tool_calls") or []:
                calls.append(ToolCall(str(call.get("name")), step.nodes[0], index))
    return calls


def _answer_text(messages: Any) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("type") in ("ai", "AIMessageChunk"):
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))
    return ""


def value_at(values: Any, path: str) -> Any:
    """The value at a dotted state path (list items by index), or ``_MISSING``."""
    for part in path.split("."):
        if isinstance(values, dict) and part in values:
            values = values[part]
        elif isinstance(values, list) and part.isdigit() and int(part) < len(values):
            values = values[int(part)]
        else:
            return _MISSING
    return values


def check_state(expected: dict[str, Any], trace: RunTrace, diverged: Finding | None = None) -> Finding:
    """Final-state paths. The blame is the first node that wrote a wrong value; when the run left the expected
    nodes (``diverged``, the failed nodes check), a value left before that point is the missing nodes' to
    change (intake's initial ``request.status`` that ``escalate`` never set), so the divergence is blamed."""
    wrong = {path: value for path, value in expected.items() if value_at(trace.final, path) != value}
    if not wrong:
        return Finding(Verdict(passed=True, reason=f"{len(expected)} state value(s) as expected"))
    blames = sorted((_state_blame(trace, path, value) for path, value in wrong.items()), key=_order)
    if diverged is not None and diverged.step is not None:
        fork = diverged.step
        blames = [b for b in blames if _order(b) >= fork] or [(diverged.step, diverged.component)]
    path = next(iter(wrong))
    actual = value_at(trace.final, path)
    shown = "missing" if actual is _MISSING else repr(actual)
    reason = f"{path} is {shown}, expected {wrong[path]!r}" + (f" (+{len(wrong) - 1} more)" if len(wrong) > 1 else "")
    step, component = blames[0]
    return Finding(Verdict(passed=False, reason=reason), step, component)


def _order(blame: tuple[int | None, str | None]) -> int:
    return blame[0] if blame[0] is not None else 1 << 30


def _state_blame(trace: RunTrace, path: str, expected: Any) -> tuple[int | None, str | None]:
    """The first step whose node changed ``path`` to a value other than the expected one."""
    before: Any = _MISSING
    for index, step in enumerate(trace.steps):
        after = value_at(step.values, path)
        if after != before and after is not _MISSING and after != expected:
            head = path.split(".")[0]
            writers = [node for node in step.nodes if isinstance(step.results.get(node), dict)]
            node = next((n for n in writers if head in step.results[n]), step.nodes[0])
            return index, node
        before = after
    return None, None


def check_sequence(kind: str, expected: list[str], mode: MatchMode, actual: list[tuple[int, str]]) -> Finding:
    """``nodes`` or ``tools``: agentevals' trajectory match in ``mode``, each name a tool call of its own.

    ``strict`` compares the whole sequence; the other modes compare the names that ran, each once (a node in
    a loop runs many times; agentevals alone would count each run). A node run is blamed on the node before
    it (whose output chose it); a tool call on itself."""
    if mode != "strict":
        first = {name: (step, name) for step, name in reversed(actual)}  # the earliest run of each name
        actual = sorted(first.values(), key=actual.index)
        expected = list(dict.fromkeys(expected))
    names = [name for _, name in actual]
    evaluator = create_trajectory_match_evaluator(trajectory_match_mode=mode, tool_args_match_mode="ignore")
    result: Any = evaluator(outputs=_as_trajectory(names), reference_outputs=_as_trajectory(expected))
    if result["score"]:
        return Finding(Verdict(passed=True, reason=f"{kind} {mode}-match {expected}"))
    reason = f"{kind} {names} do not {mode}-match {expected}"
    return Finding(Verdict(passed=False, reason=reason), *_divergence(expected, mode, actual, back=kind == "nodes"))


def _as_trajectory(names: list[str]) -> list[dict[str, Any]]:
    def step(index: int, name: str) -> dict[str, Any]:
        call = {"id": str(index), "type": "function", "function": {"name": name, "arguments": "{}"}}
        return {"role": "assistant", "content": "", "tool_calls": [call]}

    return [step(index, name) for index, name in enumerate(names)]


def _divergence(
    expected: list[str], mode: MatchMode, actual: list[tuple[int, str]], back: bool
) -> tuple[int | None, str | None]:
    """Where the run left the expected path: the first unexpected (or out-of-order) entry, or with ``back`` the
    one before it; the last entry when only something was missing."""
    if not actual:
        return None, None
    left = list(expected)
    for position, (_step, name) in enumerate(actual):
        in_order = mode != "strict" or (position < len(expected) and expected[position] == name)
        if name in left and in_order:
            left.remove(name)
            continue
        return actual[max(position - 1, 0)] if back else actual[position]
    return actual[-1]


def check_text(expected: Expected, trace: RunTrace) -> dict[str, Finding]:
    answer = trace.answer()
    step, node = trace.answered_by()
    findings: dict[str, Finding] = {}
    lowered = answer.lower()
    if expected.contains is not None:
        missing = [text for text in expected.contains if text.lower() not in lowered]
        findings["contains"] = _text_finding(missing, "lacks", expected.contains, step, node)
    if expected.not_contains is not None:
        present = [text for text in expected.not_contains if text.lower() in lowered]
        findings["not_contains"] = _text_finding(present, "contains", expected.not_contains, step, node)
    return findings


def _text_finding(bad: list[str], verb: str, wanted: list[str], step: int | None, node: str | None) -> Finding:
    if not bad:
        return Finding(Verdict(passed=True, reason=f"answer as expected for {wanted}"))
    return Finding(Verdict(passed=False, reason=f"answer {verb} {bad}"), step, node)


def check_interrupt(expected: bool, trace: RunTrace) -> Finding:
    if trace.interrupted == expected:
        return Finding(Verdict(passed=True, reason="stopped for approval" if expected else "ran to the end"))
    if trace.interrupted:
        reason = f"stopped for approval before {list(trace.pending)}"
        return Finding(Verdict(passed=False, reason=reason), len(trace.steps), (trace.pending or ("?",))[0])
    last = trace.ran[-1] if trace.ran else (None, None)
    return Finding(Verdict(passed=False, reason="ran to the end without stopping for approval"), *last)


def check_budgets(expected: Expected, trace: RunTrace) -> dict[str, Finding]:
    """``max_steps``, ``max_tokens``, ``max_cost_usd``, ``max_latency_ms``: no single component is to blame."""
    measured: dict[str, tuple[float | None, float | None, str]] = {
        "max_steps": (expected.max_steps, len(trace.ran), "steps"),
        "max_tokens": (expected.max_tokens, trace.tokens, "tokens"),
        "max_cost_usd": (expected.max_cost_usd, trace.cost_usd, "USD"),
        "max_latency_ms": (expected.max_latency_ms, trace.latency_ms, "ms"),
    }
    findings: dict[str, Finding] = {}
    for key, (limit, value, unit) in measured.items():
        if limit is None:
            continue
        if value is None:
            findings[key] = Finding(Verdict(passed=False, reason=f"unknown {unit} (a model without a price)"))
        else:
            passed = value <= limit
            findings[key] = Finding(
                Verdict(passed=passed, reason=f"{value:g} {unit} {'≤' if passed else '>'} {limit:g}")
            )
    return findings


def code_checks(example: Example, trace: RunTrace) -> dict[str, Finding]:
    """Every code check ``example.expected`` asks for, keyed as its ``expected`` key."""
    expected = example.expected
    findings: dict[str, Finding] = {}
    if expected.nodes is not None:
        findings["nodes"] = check_sequence("nodes", expected.nodes, expected.nodes_mode, trace.ran)
    if expected.state is not None:
        nodes = findings.get("nodes")
        findings["state"] = check_state(expected.state, trace, nodes if nodes and not nodes.verdict.passed else None)
    if expected.tools is not None:
        tools = [(call.step, call.name) for call in trace.tool_calls]
        finding = check_sequence("tools", expected.tools, expected.tools_mode, tools)
        findings["tools"] = _blame_caller(finding, trace)
    findings |= check_text(expected, trace)
    if expected.interrupt is not None:
        findings["interrupt"] = check_interrupt(expected.interrupt, trace)
    return findings | check_budgets(expected, trace)


def _blame_caller(finding: Finding, trace: RunTrace) -> Finding:
    """A wrong tool call is the calling node's decision: blame the node, the tool's name is in the reason.
    With no call at all, blame the node that wrote the final answer instead of calling one."""
    if finding.verdict.passed:
        return finding
    if finding.step is None:
        return Finding(finding.verdict, *trace.answered_by())
    callers = [call.node for call in trace.tool_calls if call.step == finding.step]
    return Finding(finding.verdict, finding.step, callers[0] if callers else finding.component)


def first_component(findings: dict[str, Finding]) -> str | None:
    """The component of the earliest failing step across all checks (seed 001's error-analysis row)."""
    failing = [f for f in findings.values() if not f.verdict.passed and f.component is not None]
    key: Callable[[Finding], int] = lambda f: f.step if f.step is not None else 1 << 30  # noqa: E731
    return min(failing, key=key).component if failing else None
