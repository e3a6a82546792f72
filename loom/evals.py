"""Component evals (seed 001): one component's decision alone, on every example of a golden set.

End-to-end experiments (``loom eval run``) run whole graphs through the server; a component eval calls only
the function that makes one decision (the assistant's router, support triage, plan_execute's planner), on
the configured model, and compares what it decides with what the example expects (the router's and triage's
final state; for the planner, a plan that validates and uses the example's tools). That is fast enough for CI on the
embedded model, and a failing example names the component at fault directly.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field

from graphs.plan_execute import plan_tools
from loom.datasets import Example, load_dataset
from loom.settings import get_settings
from nodes.assistant.router import route_request
from nodes.models import settings_models
from nodes.plan_execute.planner import make_planner
from nodes.plan_execute.plans import validate_plan
from nodes.support.triage import triage_request
from state.common import RunContext
from state.plan_execute import PlanExecuteState

ComponentName = Literal["router", "triage", "planner"]
COMPONENT_NAMES: tuple[ComponentName, ...] = get_args(ComponentName)
Split = Literal["golden", "holdout"]

Decide = Callable[[str, dict[str, str]], Awaitable[tuple[dict[str, str], str]]]
"""(A request's text, what is expected) → (the decision as path → value, the stage that decided it)."""


def _state_paths(*paths: str) -> Callable[[Example], dict[str, str]]:
    def expected(example: Example) -> dict[str, str]:
        state = example.expected.state or {}
        return {path: str(state[path]) for path in paths if path in state}

    return expected


@dataclass(frozen=True)
class Component:
    """A decision function, the graph whose golden sets exercise it, what it decides, and how an example says
    what it should decide; ``first_stage`` is the stage that decides without the model."""

    graph: str
    paths: tuple[str, ...]
    expected: Callable[[Example], dict[str, str]]
    decide: Decide
    first_stage: str = "keywords"


async def _route(text: str, _expected: dict[str, str]) -> tuple[dict[str, str], str]:
    update: dict[str, object] = {}
    route = await route_request(
        {"messages": [HumanMessage(text)]}, settings_models, get_settings().router_confidence, {}, update
    )
    return {"route.specialist": route["specialist"]}, route["stage"]


async def _triage(text: str, _expected: dict[str, str]) -> tuple[dict[str, str], str]:
    decision, _usage = await triage_request(text, settings_models, get_settings().router_confidence, {})
    return {"triage.category": decision["category"], "triage.priority": decision["priority"]}, decision["stage"]


def _plan_expected(example: Example) -> dict[str, str]:
    """Every plan_execute example that reaches ``validate`` expects a valid plan using its tools (or the tool
    whose failure it expects)."""
    if "validate" not in (example.expected.nodes or []):
        return {}
    failed = (example.expected.state or {}).get("failures.0.tool")
    tools = sorted({*(example.expected.tools or []), *([str(failed)] if failed else [])})
    return {"plan.valid": "true", **({"plan.tools": ",".join(tools)} if tools else {})}


async def _plan(text: str, expected: dict[str, str]) -> tuple[dict[str, str], str]:
    """The planner node alone (rules, else the model), in a one-node graph; its plan checked as ``validate`` does."""
    tools = {tool.name: tool for tool in plan_tools()}
    builder = StateGraph(PlanExecuteState, context_schema=RunContext)
    builder.add_node("planner", make_planner(settings_models, tools))
    builder.add_edge(START, "planner")
    builder.add_edge("planner", END)
    state = await builder.compile().ainvoke({"request": text, "messages": [HumanMessage(text)]})
    plan = state.get("plan") or []
    check = validate_plan(plan, tools, RunContext(), max_steps=get_settings().plan_max_steps)
    errors = [state["plan_error"]] if state.get("plan_error") else check.errors
    got = {"plan.valid": "true" if plan and not errors else (errors or ["no plan"])[0][:200]}
    if "plan.tools" in expected:
        used = {step["tool"] for step in plan if step["tool"]}
        wanted = set(expected["plan.tools"].split(","))
        got["plan.tools"] = expected["plan.tools"] if wanted <= used else ",".join(sorted(used)) or "(none)"
    return got, state.get("plan_source", "llm")


COMPONENTS: dict[ComponentName, Component] = {
    "router": Component("assistant", ("route.specialist",), _state_paths("route.specialist"), _route),
    "triage": Component(
        "support", ("triage.category", "triage.priority"), _state_paths("triage.category", "triage.priority"), _triage
    ),
    "planner": Component("plan_execute", ("plan.valid", "plan.tools"), _plan_expected, _plan, first_stage="rules"),
}


class Verdict(BaseModel):
    """One example: what was expected of the component, what it decided, and at which stage."""

    id: str
    request: str
    expected: dict[str, str]
    got: dict[str, str]
    stage: str

    @property
    def wrong(self) -> list[str]:
        """The state paths the component got wrong."""
        return [path for path, value in self.expected.items() if self.got.get(path) != value]


class ComponentResult(BaseModel):
    """A component's accuracy on one dataset: per decision, and of its first stage (keywords or rules)."""

    component: ComponentName
    dataset: str
    model: str
    accuracy: dict[str, float] = Field(description="Per decision: examples decided right / examples with it")
    first_stage: str = Field(description="The stage that decides without the model: keywords or rules")
    first_stage_decided: int = Field(description="Examples the first stage settled without the model")
    first_stage_correct: int
    verdicts: list[Verdict]
    seconds: float

    @property
    def failures(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.wrong]


async def evaluate_component(
    name: ComponentName, dataset: Path, limit: int = 0, progress: Callable[[], None] | None = None
) -> ComponentResult:
    """Run ``name``'s decision on every example of ``dataset`` that expects one of its state paths."""
    component = COMPONENTS[name]
    loaded = await asyncio.to_thread(load_dataset, dataset)
    examples = [e for e in loaded if isinstance(e.inputs, str) and component.expected(e)]
    examples = examples[:limit] if limit else examples
    started = time.perf_counter()
    verdicts = []
    for example in examples:
        assert isinstance(example.inputs, str)  # filtered above
        expected = component.expected(example)
        got, stage = await component.decide(example.inputs, expected)
        verdicts.append(Verdict(id=example.id, request=example.inputs, expected=expected, got=got, stage=stage))
        if progress:
            progress()
    first = [v for v in verdicts if v.stage == component.first_stage]
    accuracy = {
        path: sum(v.got.get(path) == v.expected[path] for v in scored) / len(scored)
        for path in component.paths
        if (scored := [v for v in verdicts if path in v.expected])
    }
    return ComponentResult(
        component=name,
        dataset=str(dataset),
        model=get_settings().model_for(name),
        accuracy=accuracy,
        first_stage=component.first_stage,
        first_stage_decided=len(first),
        first_stage_correct=len([v for v in first if not v.wrong]),
        verdicts=verdicts,
        seconds=round(time.perf_counter() - started, 1),
    )


def load_thresholds(path: Path) -> dict[str, dict[str, float]]:
    """``[component]`` tables of state path → the least accuracy that passes, from a TOML file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    thresholds: dict[str, dict[str, float]] = {}
    for component, table in data.items():
        if component not in COMPONENTS or not isinstance(table, dict):
            raise ValueError(f"{path}: {component}: not a component (one of {', '.join(COMPONENTS)})")
        paths = COMPONENTS[component].paths
        for key, value in table.items():
            if key not in paths or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{path}: {component}.{key}: expected one of {paths} = a number in [0, 1]")
        thresholds[component] = {key: float(value) for key, value in table.items()}
    return thresholds


def misses(result: ComponentResult, thresholds: dict[str, dict[str, float]]) -> list[str]:
    """One line per state path whose accuracy is below its threshold."""
    floors = thresholds.get(result.component, {})
    return [
        f"{result.component} {path}: {result.accuracy.get(path, 0.0):.1%} is below {floor:.1%}"
        for path, floor in floors.items()
        if result.accuracy.get(path, 0.0) < floor
    ]
