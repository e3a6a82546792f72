"""Experiments: every example of a dataset run on a Loom server, checked, judged, summarised and stored.

The runner is an HTTP client of a Loom server (langgraph-sdk): each example is a real run on a thread of
its own, so its trace, usage and checkpoints stay on the server, and the checks read what any client
could (the thread's state and history, the run's usage). The rubric goes to openevals' LLM-as-judge, one
binary verdict with a reason per criterion, on any Loom ``provider:model``. An experiment is stored as one
JSON file under ``<data dir>/experiments/`` (no database table yet); :func:`compare` lists the examples
whose verdicts changed between two of them.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import LangGraphError, NotFoundError
from pydantic import BaseModel, Field

from loom.checks import Finding, RunTrace, Verdict, first_component, trace_from_history
from loom.checks import code_checks as run_code_checks
from loom.datasets import Example
from loom.evaluators import Evaluator, load_evaluator
from loom.evaluators import apply as apply_evaluators

JUDGE_PROMPT = """You grade one answer of an AI assistant against ONE yes/no criterion.
Answer true only when the criterion clearly holds for the answer; otherwise false. Explain in one sentence.

<request>
{inputs}
</request>

<answer>
{outputs}
</answer>

<criterion>
{criterion}
</criterion>"""


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


Progress = Callable[[ExampleResult], None]
ClientFor = Callable[[Example], LangGraphClient]
"""The client an example's run is made with: the identity of its ``metadata.user_id`` where the server knows it."""


def user_of(example: Example) -> str:
    """The user an example assumes (``metadata.user_id``), ``demo`` when it names none."""
    return str(example.metadata.get("user_id") or "demo")


@dataclass(frozen=True)
class Session:
    """What every run of one experiment shares."""

    client_for: ClientFor
    options: RunOptions
    experiment_id: str
    evaluators: list[Evaluator]


async def run_experiment(
    client_for: ClientFor, examples: list[Example], options: RunOptions, progress: Progress | None = None
) -> Experiment:
    """Run every example ``options.repetitions`` times, at most ``options.concurrency`` at once."""
    experiment_id = f"{options.graph}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    evaluators = [await asyncio.to_thread(load_evaluator, reference) for reference in options.evaluators]
    has_messages = await _input_has_messages(client_for(examples[0]), options)
    preflight(examples, options, has_messages)
    session = Session(client_for, options, experiment_id, evaluators)
    limit = asyncio.Semaphore(options.concurrency)

    async def one(example: Example, repetition: int) -> ExampleResult:
        async with limit:
            try:
                result = await run_example(session, example, repetition)
            except LangGraphError as exc:  # the server refused or failed this run: a failed example, not a crash
                result = failed_example(example, repetition, f"{type(exc).__name__}: {exc}")
        if progress:
            progress(result)
        return result

    jobs = [one(example, rep) for rep in range(options.repetitions) for example in examples]
    results = await asyncio.gather(*jobs)
    return summarise(experiment_id, options, sorted(results, key=lambda r: (r.repetition, _position(examples, r))))


def _position(examples: list[Example], result: ExampleResult) -> int:
    return next(index for index, example in enumerate(examples) if example.id == result.id)


async def _input_has_messages(client: LangGraphClient, options: RunOptions) -> bool:
    try:
        schemas = await client.assistants.get_schemas(options.assistant_id)
    except NotFoundError:
        raise ValueError(f"the server has no assistant or graph {options.assistant_id!r}") from None
    return "messages" in ((schemas.get("input_schema") or {}).get("properties") or {})


def preflight(examples: list[Example], options: RunOptions, has_messages: bool) -> None:
    """Refuse, before any run, a dataset this experiment cannot judge or send."""
    problems = []
    if options.judge is None and (rubric := [e.id for e in examples if e.rubric]):
        problems.append(f"examples {', '.join(rubric)} have a rubric: give --judge provider:model")
    if not has_messages and (texts := [e.id for e in examples if isinstance(e.inputs, str)]):
        problems.append(f"examples {', '.join(texts)} give a message, but {options.graph}'s input has no 'messages'")
    if problems:
        raise ValueError("; ".join(problems))


def failed_example(example: Example, repetition: int, error: str) -> ExampleResult:
    """An example whose run could not be made or read."""
    verdict = Verdict(passed=False, reason=f"the run failed: {error}")
    return ExampleResult(
        id=example.id, repetition=repetition, passed=False, checks={"run": verdict}, component=None, run_id=None,
        thread_id=None, status="error", tokens=0, latency_ms=0.0, cost_usd=None, error=error,
    )  # fmt: skip


def graph_input(example: Example) -> dict[str, Any]:
    """The run's input: a string is the user's message (:func:`preflight` checked the graph takes ``messages``)."""
    if isinstance(example.inputs, dict):
        return dict(example.inputs)
    return {"messages": [{"role": "user", "content": example.inputs}]}


async def execute(session: Session, example: Example, repetition: int) -> tuple[dict[str, Any], RunTrace]:
    """One real run on a new thread, tagged with the experiment; the finished run and its trace."""
    client = session.client_for(example)
    tags = {"experiment_id": session.experiment_id, "example_id": example.id, "repetition": repetition}
    thread = await client.threads.create(metadata=tags)
    thread_id = thread["thread_id"]
    started = time.perf_counter()
    payload = graph_input(example)
    run = await client.runs.create(thread_id, session.options.assistant_id, input=payload, metadata=tags)
    await client.runs.join(thread_id, run["run_id"])
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    finished: dict[str, Any] = dict(await client.runs.get(thread_id, run["run_id"]))
    state: dict[str, Any] = dict(await client.threads.get_state(thread_id))
    history: list[dict[str, Any]] = [dict(h) for h in await client.threads.get_history(thread_id, limit=1000)]
    usage: dict[str, Any] = finished.get("usage") or {}
    tokens, cost = int(usage.get("total_tokens") or 0), usage.get("cost_usd", 0.0)
    return finished, trace_from_history(history, state, tokens, cost, latency_ms)


async def run_example(session: Session, example: Example, repetition: int) -> ExampleResult:
    """Run one example, then its code checks, the judge's rubric and the custom evaluators."""
    finished, trace = await execute(session, example, repetition)
    findings = run_code_checks(example, trace)
    scores: list[CriterionScore] = []
    if example.rubric:
        scores = await judge(str(session.options.judge), example, trace)
        findings["rubric"] = rubric_finding(scores, trace)
    findings |= await apply_evaluators(session.evaluators, example, trace)
    error = run_error(finished)
    if error is not None:
        findings["run"] = Finding(Verdict(passed=False, reason=f"the run failed: {error}"))
    return ExampleResult(
        id=example.id,
        repetition=repetition,
        passed=all(finding.verdict.passed for finding in findings.values()),
        checks={name: finding.verdict for name, finding in findings.items()},
        component=first_component(findings),
        rubric=scores,
        run_id=finished["run_id"],
        thread_id=finished["thread_id"],
        status=finished["status"],
        tokens=trace.tokens,
        latency_ms=trace.latency_ms,
        cost_usd=trace.cost_usd,
        error=error,
    )


def run_error(run: dict[str, Any]) -> str | None:
    """The message of a failed run's error, None for any other status."""
    if run.get("status") not in ("error", "timeout"):
        return None
    error = run.get("error") or {}
    return str(error.get("message") or error or run["status"]) if isinstance(error, dict) else str(error)


async def judge(spec: str, example: Example, trace: RunTrace) -> list[CriterionScore]:
    """openevals' LLM-as-judge, once per rubric criterion: a boolean score with its reasoning."""
    from openevals.llm import create_async_llm_as_judge

    from nodes.models import load_chat_model

    model = await asyncio.to_thread(load_chat_model, spec)
    evaluator = create_async_llm_as_judge(prompt=JUDGE_PROMPT, judge=model, feedback_key="criterion")
    answer = trace.answer()
    request = example.inputs if isinstance(example.inputs, str) else str(example.inputs)
    scores = []
    for criterion in example.rubric:
        result: Any = await evaluator(inputs=request, outputs=answer, criterion=criterion)
        scores.append(CriterionScore(criterion=criterion, score=1 if result["score"] else 0, reason=result["comment"]))
    return scores


def rubric_finding(scores: list[CriterionScore], trace: RunTrace) -> Finding:
    """The rubric passes when every criterion scores 1; a failure is the answer's, so its node's."""
    failed = [score.criterion for score in scores if not score.score]
    if not failed:
        return Finding(Verdict(passed=True, reason=f"{len(scores)}/{len(scores)} criteria met"))
    reason = f"{len(scores) - len(failed)}/{len(scores)} criteria met; not: {failed[0]!r}"
    return Finding(Verdict(passed=False, reason=reason), *trace.answered_by())


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
