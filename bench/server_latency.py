"""What serving costs: Loom's request-to-last-event latency against in-process ``graph.astream``, and
runs per second under concurrent clients, Loom against ``langgraph dev`` on the same graph.

    .venv/bin/python -m bench.server_latency [--runs 20] [--clients 50] [--rounds 4] [--repeats 3] [--concurrency 25]

Everything runs on the fake model (``LOOM_MODEL=fake:echo``) in a temporary directory that is
removed afterwards; the script writes nothing else and prints two tables.

* Latency: one client streams ``--runs`` runs (``stream_mode="values"``, a new thread each, after 2
  warm-up runs) of the 1-node and the 10-node chain from ``bench/bench_graphs.py``, timed from the
  request to the last event. The in-process baseline runs the same graph with ``graph.astream`` on
  the same kind of SQLite checkpointer with Loom's default durability (``sync``: every step on disk
  before the next), alternating run for run with Loom so that both see the same machine load.
  ``langgraph dev`` is timed the same way, with its own default durability (``async``); its in-memory
  queue looks for new runs every half second or so when idle, so a lone run there waits about 1 s.
* Throughput: ``--clients`` concurrent clients, each doing ``--rounds`` times create-thread +
  ``runs.wait`` of ``--graph``. Loom embedded with default settings (SQLite, in-process bus, 10 runs at
  once) and ``langgraph dev --n-jobs-per-worker 2N`` take turns, ``--repeats`` phases each (the machine
  is shared: alternating lets background load hit both alike), and the ratio of each pair is printed.
  Then Loom in scale mode (one ``loom serve --no-workers`` and two ``loom worker --concurrency N`` on a
  scratch PostgreSQL database and Redis, after one warm-up round), once.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from rich.console import Console
from rich.table import Table

from bench import one_node, ten_nodes
from loom.persistence import open_checkpointer
from loom.processes import LanggraphDev, LoomServer, scratch_postgres_database
from loom.settings import get_settings

BENCH_CONFIG = Path(__file__).with_name("langgraph.bench.json")
GRAPHS: dict[str, tuple[int, Callable[..., Any]]] = {
    "one_node": (1, one_node.build_graph),
    "ten_nodes": (10, ten_nodes.build_graph),
}
INPUT: dict[str, Any] = {"messages": [{"role": "user", "content": "ping"}]}
WARMUP = 2
REQUEST_TIMEOUT_S = 60.0
PHASE_TIMEOUT_S = 120.0
console = Console(width=100)  # wide enough for the tables when piped (rich assumes 80 columns)


@dataclass
class Latency:
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        """Nearest-rank 95th percentile."""
        ordered = sorted(self.samples)
        return ordered[math.ceil(0.95 * len(ordered)) - 1]


@dataclass
class Throughput:
    completed: int
    failures: Counter[str]
    seconds: float

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds


def check_complete(values: Any, size: int) -> None:
    """A timed run counts only if it really ran every node: one echo reply per node."""
    messages = values.get("messages", []) if isinstance(values, dict) else []
    if len(messages) != size + 1:
        raise RuntimeError(f"run did not complete: {str(values)[:300]}")


Target = Callable[[], Awaitable[float]]
"""One timed run: seconds from the request (or ``astream`` call) to the last event."""


async def timed(runs: int, targets: list[Target]) -> list[Latency]:
    """Runs the targets in turn, so background load on a shared machine hits each of them alike."""
    samples: list[list[float]] = [[] for _ in targets]
    for index in range(WARMUP + runs):
        for target, kept in zip(targets, samples, strict=True):
            elapsed = await target()
            if index >= WARMUP:
                kept.append(elapsed)
    return [Latency(kept) for kept in samples]


def in_process_run(graph: Any, size: int) -> Target:
    async def one_run() -> float:
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        started = last = time.perf_counter()
        values: Any = None
        async for chunk in graph.astream(INPUT, config, stream_mode="values", durability="sync"):
            last, values = time.perf_counter(), chunk
        check_complete(values, size)
        return last - started

    return one_run


def served_run(client: LangGraphClient, graph_id: str, size: int) -> Target:
    async def one_run() -> float:
        thread_id = (await client.threads.create())["thread_id"]
        started = last = time.perf_counter()
        values: Any = None
        async for part in client.runs.stream(thread_id, graph_id, input=INPUT, stream_mode="values"):
            last = time.perf_counter()
            values = part.data if part.event == "values" else values
        check_complete(values, size)
        return last - started

    return one_run


async def latency(url: str, graph_id: str, runs: int, baseline: bool) -> list[Latency]:
    """The server's latency, and with ``baseline`` the in-process one, measured alternately."""
    size, build_graph = GRAPHS[graph_id]
    client = get_client(url=url, timeout=REQUEST_TIMEOUT_S)
    async with open_checkpointer(get_settings()) as checkpointer, client:
        targets = [served_run(client, graph_id, size)]
        if baseline:
            targets.append(in_process_run(build_graph(checkpointer=checkpointer), size))
        return await timed(runs, targets)


async def throughput(url: str, graph_id: str, clients: int, rounds: int) -> Throughput:
    """``clients`` clients at once, each its own connection, each run on a fresh thread.

    The clients are made before the clock starts: making one costs the SDK ~20 ms of CPU here (an SSL
    context), a second for 50, which is the benchmark's own cost, not the server's."""
    size = GRAPHS[graph_id][0]
    completed, failures = 0, Counter[str]()

    async def one_client(client: LangGraphClient) -> None:
        nonlocal completed
        for _ in range(rounds):
            try:
                thread_id = (await client.threads.create())["thread_id"]
                check_complete(await client.runs.wait(thread_id, graph_id, input=INPUT), size)
                completed += 1
            except Exception as exc:  # a failed run is counted and reported, not fatal
                failures[type(exc).__name__] += 1

    sdk_clients = [get_client(url=url, timeout=REQUEST_TIMEOUT_S) for _ in range(clients)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(client) for client in sdk_clients))
        return Throughput(completed, failures, time.perf_counter() - started)
    finally:
        await asyncio.gather(*(client.aclose() for client in sdk_clients))


async def throughput_alternating(
    urls: dict[str, str], args: argparse.Namespace
) -> tuple[dict[str, Throughput], list[float]]:
    """``--repeats`` throughput phases per server, taking turns, so load from others hits each alike.

    Answers each server's totals and, per repeat, the first server's runs/s over the second's.
    """
    phases: dict[str, list[Throughput]] = {label: [] for label in urls}
    for _ in range(args.repeats):
        for label, url in urls.items():
            async with asyncio.timeout(PHASE_TIMEOUT_S):
                phases[label].append(await throughput(url, args.graph, args.clients, args.rounds))
    first, second = phases.values()
    ratios = [ours.per_second / theirs.per_second for ours, theirs in zip(first, second, strict=True)]
    return {label: total(results) for label, results in phases.items()}, ratios


def total(results: list[Throughput]) -> Throughput:
    failures: Counter[str] = Counter()
    for result in results:
        failures.update(result.failures)
    return Throughput(sum(r.completed for r in results), failures, sum(r.seconds for r in results))


async def latencies(url: str, args: argparse.Namespace, baseline: bool) -> dict[str, list[Latency]]:
    async with asyncio.timeout(PHASE_TIMEOUT_S):
        return {graph_id: await latency(url, graph_id, args.runs, baseline) for graph_id in GRAPHS}


def configure(workdir: Path) -> None:
    """The environment both servers inherit: fake model, benchmark graphs, a throwaway data dir."""
    os.environ.update(
        LOOM_MODEL="fake:echo",
        LOOM_DATA_DIR=str(workdir / "in-process"),
        LOOM_GRAPHS_CONFIG=str(BENCH_CONFIG),
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",  # no request can leave the machine
    )
    get_settings.cache_clear()


async def scale_throughput(args: argparse.Namespace, workdir: Path) -> Throughput:
    """One ``loom serve --no-workers`` and two ``loom worker --concurrency N`` on PostgreSQL + Redis."""
    with scratch_postgres_database(args.postgres, "loom_bench") as database:
        env = {"LOOM_DATABASE_URL": database, "LOOM_CHECKPOINT_URL": database, "LOOM_REDIS_URL": args.redis}
        env["LOOM_SERVER_QUEUE_SIZE"] = str(4 * args.clients)
        api = LoomServer(workdir / "scale", env, role="api")
        workers = [
            LoomServer(workdir / "scale", env, ["--concurrency", str(args.concurrency)], role="worker")
            for _ in range(2)
        ]
        started: list[LoomServer] = []
        try:
            for process in (api, *workers):
                started.append(process.start())
            async with asyncio.timeout(PHASE_TIMEOUT_S):
                await throughput(api.url, args.graph, args.clients, 1)  # warm-up: connections, first runs
                return await throughput(api.url, args.graph, args.clients, args.rounds)
        finally:
            for process in started:
                process.stop()


async def run(args: argparse.Namespace, workdir: Path) -> None:
    configure(workdir)
    loom = LoomServer(workdir / "loom")  # embedded, default settings
    jobs = 2 * args.concurrency
    dev_env = {"LOOM_DATA_DIR": str(workdir / "dev" / "data")}
    dev = LanggraphDev(workdir / "dev", BENCH_CONFIG, dev_env, n_jobs_per_worker=jobs)
    embedded, reference = "Loom embedded (defaults)", f"langgraph dev --n-jobs-per-worker {jobs}"
    with console.status("Loom embedded and langgraph dev, taking turns"):
        loom.start()
        dev.start()
        try:
            loom_latency = await latencies(loom.url, args, baseline=True)
            dev_latency = await latencies(dev.url, args, baseline=False)
            results, ratios = await throughput_alternating({embedded: loom.url, reference: dev.url}, args)
        finally:
            loom.stop()
            dev.stop()
    if not args.no_scale:
        with console.status("Loom scale mode: API + 2 workers on PostgreSQL + Redis"):
            label = f"Loom API + 2 workers × {args.concurrency}, PostgreSQL + Redis"
            results = {embedded: results[embedded], label: await scale_throughput(args, workdir), **results}
    console.print(latency_table(args, loom_latency, dev_latency))
    console.print(throughput_table(args, results))
    each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    console.print(f"Loom embedded ÷ langgraph dev, runs/s per repeat: {each} (median {statistics.median(ratios):.2f})")


def ms(latency: Latency) -> str:
    return f"{latency.median * 1000:.1f} / {latency.p95 * 1000:.1f}"


def latency_table(args: argparse.Namespace, loom: dict[str, list[Latency]], dev: dict[str, list[Latency]]) -> Table:
    table = Table(title=f"Request to last event, ms (median / p95 of {args.runs} runs, fake model)")
    for column in ("graph", "in-process astream", "Loom", "Loom ÷ in-process", "langgraph dev"):
        table.add_column(column, justify="left" if column == "graph" else "right")
    for graph_id, (size, _) in GRAPHS.items():
        (served, in_process), (reference,) = loom[graph_id], dev[graph_id]
        label = f"{size} node{'s' if size > 1 else ''}"
        table.add_row(label, ms(in_process), ms(served), f"{served.median / in_process.median:.1f}×", ms(reference))
    return table


def throughput_table(args: argparse.Namespace, results: dict[str, Throughput]) -> Table:
    size = GRAPHS[args.graph][0]
    table = Table(
        title=f"{args.clients} concurrent clients × {args.rounds} create-thread + runs.wait, {size}-node graph"
    )
    for column in ("server", "runs ok", "failed", "seconds", "runs/s"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for server, result in results.items():
        failed = ", ".join(f"{count} {name}" for name, count in result.failures.most_common()) or "0"
        row = (str(result.completed), failed, f"{result.seconds:.1f}", f"{result.per_second:.1f}")
        table.add_row(server, *row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per graph and target")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients in the throughput test")
    parser.add_argument("--rounds", type=int, default=4, help="runs each client makes")
    parser.add_argument("--repeats", type=int, default=3, help="throughput phases per server, taking turns")
    parser.add_argument(
        "--concurrency", type=int, default=25, help="runs per Loom worker process; langgraph dev gets twice this"
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL for the scale mode")
    parser.add_argument("--no-scale", action="store_true", help="skip the PostgreSQL + Redis measurement")
    parser.add_argument("--graph", choices=sorted(GRAPHS), default="one_node", help="graph of the throughput test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as workdir:
        asyncio.run(run(args, Path(workdir)))


if __name__ == "__main__":
    main()
