"""Experiments: every example of a dataset run on a Loom server, checked, judged, summarised and stored.

The runner is an HTTP client of a Loom server (langgraph-sdk): each example is a real run on a thread of
its own, so its trace, usage and checkpoints stay on the server, and the checks read what any client
could (the thread's state and history, the run's usage). The rubric goes to openevals' LLM-as-judge, one
binary verdict with a reason per criterion, on any Loom ``provider:model``. The record it returns, its
storage and comparison are in :mod:`loom.experiment_record`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import LangGraphError, NotFoundError

from loom.checks import Finding, RunTrace, Verdict, first_component, trace_from_history
from loom.checks import code_checks as run_code_checks
from loom.datasets import Example
from loom.evaluators import Evaluator, load_evaluator
from loom.evaluators import apply as apply_evaluators
from loom.experiment_record import CriterionScore, ExampleResult, Experiment, RunOptions, summarise

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
        culprit = trace.failed[0] if trace.failed else None
        findings["run"] = Finding(Verdict(passed=False, reason=f"the run failed: {error}"), len(trace.steps), culprit)
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
    """openevals' LLM-as-judge, once per rubric criterion: a boolean score with its reasoning.

    A judge that fails or answers outside its schema scores the criterion 0 with the error as the reason, so
    one bad answer of the judge costs a verdict, not the experiment."""
    from openevals.llm import create_async_llm_as_judge

    from nodes.models import load_chat_model

    model = await asyncio.to_thread(load_chat_model, spec)
    evaluator = create_async_llm_as_judge(prompt=JUDGE_PROMPT, judge=model, feedback_key="criterion")
    answer = trace.answer()
    request = example.inputs if isinstance(example.inputs, str) else str(example.inputs)
    scores = []
    for criterion in example.rubric:
        try:
            result: Any = await evaluator(inputs=request, outputs=answer, criterion=criterion)
        except Exception as exc:  # any provider's error, or an answer that is not the schema's JSON
            scores.append(CriterionScore(criterion=criterion, score=0, reason=f"the judge failed: {exc!r}"[:500]))
            continue
        scores.append(CriterionScore(criterion=criterion, score=1 if result["score"] else 0, reason=result["comment"]))
    return scores


def rubric_finding(scores: list[CriterionScore], trace: RunTrace) -> Finding:
    """The rubric passes when every criterion scores 1; a failure is the answer's, so its node's."""
    failed = [score.criterion for score in scores if not score.score]
    if not failed:
        return Finding(Verdict(passed=True, reason=f"{len(scores)}/{len(scores)} criteria met"))
    reason = f"{len(scores) - len(failed)}/{len(scores)} criteria met; not: {failed[0]!r}"
    return Finding(Verdict(passed=False, reason=reason), *trace.answered_by())
