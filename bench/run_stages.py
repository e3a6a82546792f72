"""Where a lone streamed run's time goes: one 1-node ``runs.stream``, cut into the server's stages.

    .venv/bin/python -m bench.run_stages [--runs 300]

``bench.server_latency`` says how much longer a served run takes than in-process ``astream``; this says
where the difference goes. It starts Loom embedded (default settings, fake model, the graphs of
``bench/bench_graphs.py``) in a process of its own, in which it first wraps a few of the server's
functions to note the time as a run crosses each stage (Loom carries no timing code for this), then
streams ``--runs`` runs of the 1-node graph on new threads one after another (after 2 warm-ups),
alternating with in-process ``astream`` runs as ``bench.server_latency`` does. It prints each stage's
median; the client's share is its wall time minus the server's, run by run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.server_latency import WARMUP, configure, latency
from loom.processes import LoomServer

STAGES = [
    ("request", "route", "HTTP request in, middleware, routing, body parsed"),
    ("route", "admission begins", "assistant, input and resume checks"),
    ("admission begins", "admission committed", "admission transaction (run row inserted, claimed)"),
    ("admission committed", "graph starts", "run task started, metadata event published"),
    ("graph starts", "graph ends", "graph: its config built, astream with checkpoints, events published"),
    ("graph ends", "outcome recorded", "final state read (interrupts, output)"),
    ("outcome recorded", "outcome committed", "finish transaction (run ended, thread freed)"),
    ("outcome committed", "end published", "end event published"),
    ("end published", "response sent", "end event written, response closed"),
]
REPORT_WAIT_S = 30.0
console = Console(width=110)


class Stamps:
    """The times one streamed run crossed each stage boundary; runs are one at a time, so one is current."""

    def __init__(self, expected: int, report: Path) -> None:
        self.expected, self.report = expected, report
        self.runs: list[dict[str, float]] = []
        self.current: dict[str, float] | None = None

    def begin(self) -> None:
        self.current = {"request": time.perf_counter()}

    def stamp(self, name: str) -> None:
        if self.current is not None:
            self.current.setdefault(name, time.perf_counter())

    def end(self) -> None:
        if self.current is None:
            return
        self.stamp("response sent")
        self.runs.append(self.current)
        self.current = None
        if len(self.runs) == self.expected:  # written whole, then renamed: the reader never sees half of it
            partial = self.report.with_suffix(".partial")
            partial.write_text(json.dumps(self.runs))
            partial.replace(self.report)


def around(
    owner: Any, name: str, before: str, after: str, stamps: Stamps, only: Callable[..., bool] | None = None
) -> None:
    """``owner.name`` (a coroutine function) stamps ``before`` when called and ``after`` when it returns,
    for the calls whose arguments ``only`` accepts (all calls without it)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        if only is not None and not only(*args, **kwargs):
            return await original(*args, **kwargs)
        stamps.stamp(before)
        result = await original(*args, **kwargs)
        stamps.stamp(after)
        return result

    setattr(owner, name, timed)


def instrument(stamps: Stamps) -> None:
    """Wrap the server's stage boundaries before the app is built (the routes look these names up per call)."""
    from server.engine import admission, queue
    from server.engine.manager import RunManager
    from server.observability import metrics
    from server.routes import runs as run_routes

    observe: Callable[..., Any] = metrics.HttpObserver.__call__

    async def observed(self: Any, scope: Any, receive: Any, send: Any) -> None:
        streamed = scope["type"] == "http" and scope["path"].endswith("/runs/stream")
        if streamed:
            stamps.begin()
        await observe(self, scope, receive, send)
        if streamed:
            stamps.end()

    metrics.HttpObserver.__call__ = observed  # type: ignore[method-assign]

    def admitting(sessions: Any, work: Any) -> bool:
        return getattr(work, "__name__", "") == "admit"

    around(admission, "transaction", "admission begins", "admission committed", stamps, only=admitting)
    around(run_routes, "start_run", "route", "route", stamps)
    around(RunManager, "_stream_graph", "graph starts", "graph ends", stamps)
    around(RunManager, "_finish", "graph ends", "end published", stamps)
    around(queue, "finish", "outcome recorded", "outcome committed", stamps)


def serve(port: str, report: str, expected: str) -> None:
    """The server process: instrumented, then ``loom serve`` as usual."""
    from loom.cli import main

    instrument(Stamps(int(expected), Path(report)))
    sys.exit(main(["serve", "--port", port]))


class StagedServer(LoomServer):
    def __init__(self, data_dir: Path, report: Path, expected: int) -> None:
        super().__init__(data_dir)
        self.report, self.expected = report, expected

    def command(self) -> list[str]:
        serve = ["--serve", str(self.port), str(self.report), str(self.expected)]
        return [sys.executable, "-m", "bench.run_stages", *serve]


async def measure(runs: int, workdir: Path) -> tuple[list[dict[str, float]], list[float], list[float]]:
    """The server's stamps per timed run, and the client's and in-process wall times (seconds)."""
    report = workdir / "stages.json"
    server = StagedServer(workdir / "loom", report, WARMUP + runs).start()
    try:
        served, in_process = await latency(server.url, "one_node", runs, baseline=True)
        deadline = time.monotonic() + REPORT_WAIT_S
        while not report.exists():  # the last response is closed just after its last byte reached the client
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server wrote no stage report; its log: {server.log}")
            await asyncio.sleep(0.05)
    finally:
        server.stop()
    stamped = json.loads(report.read_text())[WARMUP:]
    return stamped, served.samples, in_process.samples


def table(stamped: list[dict[str, float]], client: list[float], in_process: list[float]) -> Table:
    ms = 1000.0
    wall = statistics.median(client) * ms
    title = f"One streamed 1-node run, stage by stage: median ms of {len(client)} runs (fake model)"
    table = Table(title=title)
    for column in ("stage", "ms", "share"):
        table.add_column(column, justify="left" if column == "stage" else "right")

    def row(label: str, value: float) -> None:
        table.add_row(label, f"{value:.2f}", f"{value / wall:.0%}")

    for start, stop, label in STAGES:
        row(label, statistics.median((run[stop] - run[start]) * ms for run in stamped))
    server = [(run["response sent"] - run["request"]) * ms for run in stamped]
    row(
        "client and sockets (client wall − server)",
        statistics.median(c * ms - s for c, s in zip(client, server, strict=True)),
    )
    table.add_section()
    row("server, request in to response closed", statistics.median(server))
    row("client, request to last event", wall)
    row("in-process astream, same graph and checkpointer", statistics.median(in_process) * ms)
    return table


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(*sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="timed runs (each alternating with an in-process one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loom-stages-") as workdir:
        configure(Path(workdir))
        stamped, client, in_process = asyncio.run(measure(args.runs, Path(workdir)))
    console.print(table(stamped, client, in_process))


if __name__ == "__main__":
    main()
