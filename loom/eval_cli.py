"""``loom eval run``, ``compare`` and ``components``: experiments and component evals, shown as rich tables."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loom.datasets import Example, load_dataset
from loom.evals import COMPONENT_NAMES, COMPONENTS, ComponentResult, evaluate_component, load_thresholds, misses
from loom.experiment_record import Change, ExampleResult, Experiment, RunOptions, compare, load, save
from loom.experiments import ClientFor, run_experiment, user_of
from loom.settings import get_settings


def add_eval_commands(commands: Any) -> None:
    """``eval run``, ``eval compare`` and ``eval components`` under one ``eval`` command of ``loom``'s subcommands."""
    about = "run a dataset as an experiment, compare or tabulate experiments, or evaluate components alone"
    evaluate = commands.add_parser("eval", help=about, description=about)
    actions = evaluate.add_subparsers(required=True, metavar="action")
    run = actions.add_parser("run", help="run every example of a dataset and store the experiment")
    run.set_defaults(handler=_run)
    run.add_argument("dataset", type=Path, help="a JSONL dataset (see evals/README.md)")
    run.add_argument("--graph", required=True, help="the graph id the dataset is for")
    run.add_argument("--assistant", help="assistant id to run (default: the graph's own)")
    run.add_argument("--judge", help="provider:model that judges rubric criteria")
    run.add_argument(
        "--evaluator", action="append", default=[], help="./file.py:function or module:function (repeatable)"
    )
    run.add_argument("--repetitions", type=int, default=1)
    run.add_argument("--concurrency", type=int, default=1)
    run.add_argument("--min-score", type=float, default=0.0, help="exit 1 when the score is below this")
    run.add_argument("--json", type=Path, help="also write the experiment to this file")
    run.add_argument("--url", help="a running Loom server (default: start one for this experiment)")
    run.add_argument("--config", type=Path, help="the project's langgraph.json (default: as `loom serve`)")
    diff = actions.add_parser("compare", help="list the examples whose verdicts changed between two experiments")
    diff.set_defaults(handler=_compare)
    diff.add_argument("before", help="experiment id or JSON file")
    diff.add_argument("after", help="experiment id or JSON file")
    diff.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    table = actions.add_parser("table", help="one row per stored experiment: score, checks, latency (make eval)")
    table.set_defaults(handler=_table)
    table.add_argument("experiments", nargs="+", help="experiment ids or JSON files")
    table.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parts = actions.add_parser("components", help="run each component's decision alone on its golden set (fast)")
    parts.set_defaults(handler=_components)
    parts.add_argument("--component", action="append", choices=COMPONENT_NAMES, help="repeatable (default: all)")
    parts.add_argument("--split", choices=["golden", "holdout"], default="golden", help="evals/<graph>/<split>.jsonl")
    parts.add_argument("--evals", type=Path, default=Path("evals"), help="the golden sets' folder")
    parts.add_argument("--thresholds", type=Path, help="exit 1 below these accuracies (evals/thresholds.toml)")
    parts.add_argument("--limit", type=int, default=0, help="only the first N examples of each set")
    parts.add_argument("--json", type=Path, help="also write the results to this file")
    parts.add_argument("--config", type=Path, help=argparse.SUPPRESS)


async def _run(args: argparse.Namespace) -> int:
    console = Console()
    examples = load_dataset(args.dataset)
    options = RunOptions(
        dataset=str(args.dataset),
        graph=args.graph,
        assistant_id=args.assistant or args.graph,
        judge=args.judge,
        evaluators=args.evaluator,
        repetitions=args.repetitions,
        concurrency=args.concurrency,
    )
    data_dir = get_settings().data_dir.resolve()
    async with _server(args.url, data_dir, examples) as client_for:
        with _progress(console) as progress:
            task = progress.add_task(f"{args.dataset.name} on {args.graph}", total=len(examples) * args.repetitions)
            experiment = await run_experiment(client_for, examples, options, lambda _r: progress.advance(task))
    path = save(experiment, data_dir)
    if args.json:
        args.json.write_text(experiment.model_dump_json(indent=2), encoding="utf-8")
    show(experiment, console)
    console.print(f"[dim]stored as {path}[/dim]")
    if experiment.score < args.min_score:
        console.print(f"[red]score {experiment.score:.1%} is below --min-score {args.min_score:.1%}[/red]")
        return 1
    return 0


@asynccontextmanager
async def _server(url: str | None, data_dir: Path, examples: list[Example]) -> AsyncIterator[ClientFor]:
    """Clients of the given server (its ``LANGGRAPH_API_KEY``, if any, is the caller's), or of a Loom server
    started for this experiment with an API key for each user the examples name, so each run acts as its user."""
    if url:
        client = get_client(url=url.rstrip("/"))
        yield lambda _example: client
        return
    from loom.processes import LoomServer

    keys = {user: secrets.token_urlsafe(24) for user in sorted({user_of(example) for example in examples})}
    server = LoomServer(data_dir, env={"LOOM_API_KEYS": json.dumps(keys)})
    await asyncio.to_thread(server.start)
    try:
        clients = {user: get_client(url=server.url, api_key=key) for user, key in keys.items()}
        yield lambda example: clients[user_of(example)]
    finally:
        await asyncio.to_thread(server.stop)


def _progress(console: Console) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True)


def show(experiment: Experiment, console: Console) -> None:
    """The per-example table, the error analysis by component, and the summary."""
    table = Table("example", "ok", "failed checks", "component", "tokens", "ms", "USD", title=experiment.experiment_id)
    for result in experiment.examples:
        table.add_row(
            result.id + (f" #{result.repetition}" if experiment.repetitions > 1 else ""),
            "[green]✓[/green]" if result.passed else "[red]✗[/red]",
            _failures(result),
            result.component or "",
            str(result.tokens),
            f"{result.latency_ms:.0f}",
            "?" if result.cost_usd is None else f"{result.cost_usd:.6f}",
        )
    console.print(table)
    failing = len([r for r in experiment.examples if not r.passed])
    analysis = Table("component", "failing examples", "share of failures", title="error analysis")
    for component, count in experiment.components.items():
        analysis.add_row(component, str(count), f"{count / max(failing, 1):.0%}")
    if experiment.components:
        console.print(analysis)
    summary = Table("metric", "value", title="summary")
    summary.add_row(
        "score", f"{experiment.score:.1%} ({len(experiment.examples) - failing}/{len(experiment.examples)})"
    )
    for name, rate in experiment.checks.items():
        summary.add_row(f"check {name}", f"{rate:.1%}")
    summary.add_row("latency p50 / p95", f"{experiment.latency_p50_ms:.0f} / {experiment.latency_p95_ms:.0f} ms")
    cost = experiment.cost_per_example_usd
    summary.add_row("cost per example", "unknown" if cost is None else f"${cost:.6f}")
    summary.add_row("tokens", str(experiment.tokens))
    console.print(summary)


async def _table(args: argparse.Namespace) -> int:
    data_dir = get_settings().data_dir.resolve()
    experiments = [await asyncio.to_thread(load, reference, data_dir) for reference in args.experiments]
    table = Table("graph", "dataset", "score", "checks (pass rate)", "failing by component", "p50 / p95 ms")
    for e in experiments:
        passed = len([r for r in e.examples if r.passed])
        table.add_row(
            e.graph,
            Path(e.dataset).name,
            f"{e.score:.1%} ({passed}/{len(e.examples)})",
            ", ".join(f"{name} {rate:.0%}" for name, rate in e.checks.items()),
            ", ".join(f"{name} {count}" for name, count in e.components.items()),
            f"{e.latency_p50_ms:.0f} / {e.latency_p95_ms:.0f}",
        )
    Console().print(table)
    return 0


async def _components(args: argparse.Namespace) -> int:
    console = Console()
    floors = await asyncio.to_thread(load_thresholds, args.thresholds) if args.thresholds else {}
    results, missed = [], []
    for name in args.component or COMPONENT_NAMES:
        dataset = args.evals / COMPONENTS[name].graph / f"{args.split}.jsonl"
        with _progress(console) as progress:
            task = progress.add_task(f"{name} on {dataset}")
            result = await evaluate_component(name, dataset, args.limit, partial(progress.advance, task))
        show_component(result, console)
        results.append(result)
        missed += misses(result, floors)
    if args.json:
        text = json.dumps([r.model_dump() for r in results], indent=2)
        await asyncio.to_thread(args.json.write_text, text, encoding="utf-8")
    for line in missed:
        console.print(f"[red]{line}[/red]")
    return 1 if missed else 0


def show_component(result: ComponentResult, console: Console) -> None:
    """The failing examples, then accuracy per decision and the first stage's share."""
    title = f"{result.component} on {result.dataset} with {result.model}: failures"
    failures = Table("request", "decision", "expected", "got", "stage", title=title)
    for verdict in result.failures:
        for path in verdict.wrong:
            failures.add_row(verdict.request, path, verdict.expected[path], verdict.got[path], verdict.stage)
    console.print(failures)
    total = len(result.verdicts)
    summary = Table("metric", "value", title=f"{result.component}: {total} examples in {result.seconds} s")
    for path, rate in result.accuracy.items():
        summary.add_row(path, f"{rate:.1%}")
    summary.add_row(f"{result.first_stage} stage decides", f"{result.first_stage_decided}/{total}")
    summary.add_row(f"{result.first_stage} stage correct", f"{result.first_stage_correct}/{result.first_stage_decided}")
    console.print(summary)


def _failures(result: ExampleResult) -> str:
    return "\n".join(f"{name}: {v.reason}" for name, v in result.checks.items() if not v.passed)


async def _compare(args: argparse.Namespace) -> int:
    console = Console()
    data_dir = get_settings().data_dir.resolve()
    before, after = load(args.before, data_dir), load(args.after, data_dir)
    changes = compare(before, after)
    table = Table(
        "example", "before", "after", "checks that changed", title=f"{before.experiment_id} → {after.experiment_id}"
    )
    for change in changes:
        table.add_row(_label(change), _mark(change.before), _mark(change.after), _flips(change))
    console.print(table)
    console.print(f"score {before.score:.1%} → {after.score:.1%}; {len(changes)} example(s) changed")
    return 0


def _label(change: Change) -> str:
    return change.id + (f" #{change.repetition}" if change.repetition else "")


def _mark(passed: bool | None) -> str:
    return {True: "[green]pass[/green]", False: "[red]fail[/red]", None: "[dim]absent[/dim]"}[passed]


def _flips(change: Change) -> str:
    return ", ".join(f"{name} {_mark(a)}→{_mark(b)}" for name, (a, b) in change.checks.items())
