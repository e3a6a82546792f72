"""An experiment's record: its per-example results and summary, stored as one JSON file, and compared.

Experiments live under ``<data dir>/experiments/<id>.json`` (a file each; no database table yet). The
record is what ``loom eval run --json`` writes: at least ``experiment_id``, ``score``, ``examples`` (each
with its checks' verdicts, the component at fault, run and thread ids, tokens, latency and cost),
``checks`` (pass rates) and ``components`` (failing examples per node or tool).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from loom.checks import Verdict


class CriterionScore(BaseModel):
    """The judge's verdict on one rubric criterion: 1 or 0, and why."""

    criterion: str
    score: Literal[0, 1]
    reason: str


class ExampleResult(BaseModel):
    """One run of one example: its verdicts, the component at fault, and what it cost."""

    id: str
    repetition: int = 0
    passed: bool
    checks: dict[str, Verdict]
    component: str | None = Field(description="The first node or tool whose output broke an expectation")
    rubric: list[CriterionScore] = Field(default_factory=list)
    run_id: str | None
    thread_id: str | None
    status: str
    tokens: int
    latency_ms: float
    cost_usd: float | None
    error: str | None = None


class Experiment(BaseModel):
    """A stored experiment: its settings, the per-example results and their summary."""

    experiment_id: str
    created_at: str
    dataset: str
    graph: str
    assistant_id: str
    judge: str | None
    repetitions: int
    score: float = Field(description="Share of runs that passed every check")
    checks: dict[str, float] = Field(description="Each check's pass rate over the runs that have it")
    components: dict[str, int] = Field(description="Failing runs attributed to each node or tool")
    latency_p50_ms: float
    latency_p95_ms: float
    cost_per_example_usd: float | None
    tokens: int
    examples: list[ExampleResult]


class RunOptions(BaseModel):
    """What ``loom eval run`` was asked for."""

    dataset: str
    graph: str
    assistant_id: str
    judge: str | None = None
    evaluators: list[str] = Field(default_factory=list, description="./file.py:function or module:function")
    repetitions: int = Field(default=1, ge=1)
    concurrency: int = Field(default=1, ge=1)


def summarise(experiment_id: str, options: RunOptions, results: list[ExampleResult]) -> Experiment:
    """Score, per-check pass rates, per-component failure counts, latency percentiles and cost."""
    names = sorted({name for result in results for name in result.checks})
    rates = {name: _rate([r.checks[name].passed for r in results if name in r.checks]) for name in names}
    components = Counter(r.component for r in results if not r.passed and r.component is not None)
    latencies = sorted(r.latency_ms for r in results)
    costs = [r.cost_usd for r in results]
    known = None if any(c is None for c in costs) else round(sum(c or 0.0 for c in costs) / max(len(costs), 1), 8)
    return Experiment(
        experiment_id=experiment_id,
        created_at=datetime.now(UTC).isoformat(),
        dataset=options.dataset,
        graph=options.graph,
        assistant_id=options.assistant_id,
        judge=options.judge,
        repetitions=options.repetitions,
        score=_rate([r.passed for r in results]),
        checks=rates,
        components=dict(components.most_common()),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        cost_per_example_usd=known,
        tokens=sum(r.tokens for r in results),
        examples=results,
    )


def _rate(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def experiments_dir(data_dir: Path) -> Path:
    return data_dir / "experiments"


def save(experiment: Experiment, data_dir: Path) -> Path:
    """Store an experiment as ``<data dir>/experiments/<id>.json``."""
    folder = experiments_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{experiment.experiment_id}.json"
    path.write_text(experiment.model_dump_json(indent=2), encoding="utf-8")
    return path


def load(reference: str, data_dir: Path) -> Experiment:
    """A stored experiment by id, or a JSON file written by ``--json``."""
    path = Path(reference)
    if not (path.suffix == ".json" and path.is_file()):
        if not all(c.isalnum() or c in "-_" for c in reference):
            raise ValueError(f"experiment id {reference!r}: letters, digits, '-' and '_' only")
        path = experiments_dir(data_dir) / f"{reference}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no experiment {reference!r} (looked in {experiments_dir(data_dir)})")
    return Experiment.model_validate_json(path.read_text(encoding="utf-8"))


class Change(BaseModel):
    """An example whose verdict differs between two experiments; ``checks`` lists the checks that flipped."""

    id: str
    repetition: int
    before: bool | None
    after: bool | None
    checks: dict[str, tuple[bool | None, bool | None]]


def compare(before: Experiment, after: Experiment) -> list[Change]:
    """Examples (by id and repetition) whose overall verdict or a check both ran changed, or that only one has."""
    old = {(r.id, r.repetition): r for r in before.examples}
    new = {(r.id, r.repetition): r for r in after.examples}
    changes = []
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key), new.get(key)
        names = sorted(set(a.checks) & set(b.checks)) if a and b else []  # a check only one ran is no change
        flipped = {n: (_verdict(a, n), _verdict(b, n)) for n in names if _verdict(a, n) != _verdict(b, n)}
        if a is None or b is None or a.passed != b.passed or flipped:
            passed = (a.passed if a else None), (b.passed if b else None)
            changes.append(Change(id=key[0], repetition=key[1], before=passed[0], after=passed[1], checks=flipped))
    return changes


def _verdict(result: ExampleResult | None, check: str) -> bool | None:
    return result.checks[check].passed if result and check in result.checks else None
