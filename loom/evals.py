"""Component evals (seed 001): one component's decision alone, on every example of a golden set.

End-to-end experiments (``loom eval run``) run whole graphs through the server; a component eval calls only
the function that makes one decision (the assistant's router, support triage), on the configured model,
and compares what it decides with the example's expected final state. That is fast enough for CI on the
embedded model, and a failing example names the component at fault directly.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from langchain_core.messages import HumanMessage
from pydantic import BaseModel, Field

from loom.datasets import Example, load_dataset
from loom.settings import get_settings
from nodes.assistant.router import route_request
from nodes.models import settings_models
from nodes.support.triage import triage_request

ComponentName = Literal["router", "triage"]
COMPONENT_NAMES: tuple[ComponentName, ...] = get_args(ComponentName)
Split = Literal["golden", "holdout"]

Decide = Callable[[str], Awaitable[tuple[dict[str, str], str]]]
"""A request's text → (the decision as final-state path → value, the stage that decided it)."""


@dataclass(frozen=True)
class Component:
    """A decision function, the graph whose golden sets exercise it, and the state paths it decides."""

    graph: str
    paths: tuple[str, ...]
    decide: Decide


async def _route(text: str) -> tuple[dict[str, str], str]:
    update: dict[str, object] = {}
    route = await route_request(
        {"messages": [HumanMessage(text)]}, settings_models, get_settings().router_confidence, {}, update
    )
    return {"route.specialist": route["specialist"]}, route["stage"]


async def _triage(text: str) -> tuple[dict[str, str], str]:
    decision, _usage = await triage_request(text, settings_models, get_settings().router_confidence, {})
    return {"triage.category": decision["category"], "triage.priority": decision["priority"]}, decision["stage"]


COMPONENTS: dict[ComponentName, Component] = {
    "router": Component("assistant", ("route.specialist",), _route),
    "triage": Component("support", ("triage.category", "triage.priority"), _triage),
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
    """A component's accuracy on one dataset: per state path, and of its keyword (first) stage."""

    component: ComponentName
    dataset: str
    model: str
    accuracy: dict[str, float] = Field(description="Per state path: examples decided right / examples with it")
    keyword_decided: int = Field(description="Examples the keyword stage settled without the model")
    keyword_correct: int
    verdicts: list[Verdict]
    seconds: float

    @property
    def failures(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.wrong]


def _expected(example: Example, paths: Sequence[str]) -> dict[str, str]:
    state = example.expected.state or {}
    return {path: str(state[path]) for path in paths if path in state}


async def evaluate_component(
    name: ComponentName, dataset: Path, limit: int = 0, progress: Callable[[], None] | None = None
) -> ComponentResult:
    """Run ``name``'s decision on every example of ``dataset`` that expects one of its state paths."""
    component = COMPONENTS[name]
    loaded = await asyncio.to_thread(load_dataset, dataset)
    examples = [e for e in loaded if isinstance(e.inputs, str) and _expected(e, component.paths)]
    examples = examples[:limit] if limit else examples
    started = time.perf_counter()
    verdicts = []
    for example in examples:
        assert isinstance(example.inputs, str)  # filtered above
        got, stage = await component.decide(example.inputs)
        expected = _expected(example, component.paths)
        verdicts.append(Verdict(id=example.id, request=example.inputs, expected=expected, got=got, stage=stage))
        if progress:
            progress()
    by_keywords = [v for v in verdicts if v.stage == "keywords"]
    accuracy = {
        path: sum(v.got.get(path) == v.expected[path] for v in scored) / len(scored)
        for path in component.paths
        if (scored := [v for v in verdicts if path in v.expected])
    }
    return ComponentResult(
        component=name,
        dataset=str(dataset),
        model=get_settings().model_for("router" if name == "router" else "triage"),
        accuracy=accuracy,
        keyword_decided=len(by_keywords),
        keyword_correct=len([v for v in by_keywords if not v.wrong]),
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
