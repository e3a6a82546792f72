"""What tracing and metrics cost: runs per second on the 1-node graph with them off, metrics only, and both.

    .venv/bin/python -m bench.observability_overhead [--clients 8] [--runs 5] [--repeats 8]

Three embedded Loom servers (SQLite, fake model, ``bench/bench_graphs.py``) run side by side but are
driven one at a time, interleaved: each repetition sends ``--clients`` concurrent clients doing
``--runs`` create-thread + ``runs.wait`` each to every server in turn, the order rotating per
repetition, so load from the rest of a shared machine falls on all three alike. "traced" exports
every span over OTLP/HTTP to a local collector that accepts and drops them. Prints runs/s per server
(all repetitions together) and the median of the per-repetition ratios to "off".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.server_latency import Throughput, configure, throughput
from loom.processes import LoomServer

console = Console(width=100)
SETUPS = {
    "off": {"LOOM_METRICS": "false"},
    "metrics": {"LOOM_METRICS": "true"},
    "metrics + traces": {"LOOM_METRICS": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": ""},  # endpoint filled in at start
}


class DroppingCollector(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that reads each export and answers 200, as a collector would."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def measure(servers: dict[str, LoomServer], args: argparse.Namespace) -> dict[str, list[Throughput]]:
    results: dict[str, list[Throughput]] = {name: [] for name in servers}
    names = list(servers)
    for name in names:  # warm-up: imports, connections, first checkpoints
        await throughput(servers[name].url, "one_node", args.clients, 1)
    for repeat in range(args.repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            results[name].append(await throughput(servers[name].url, "one_node", args.clients, args.runs))
    return results


def table(results: dict[str, list[Throughput]]) -> Table:
    out = Table(title="1-node graph, runs/s (interleaved repetitions)")
    for column in ("setup", "runs ok", "failed", "runs/s", "median ratio to off"):
        out.add_column(column, justify="right")
    baseline = results["off"]
    for name, batches in results.items():
        completed = sum(batch.completed for batch in batches)
        failed = sum(sum(batch.failures.values()) for batch in batches)
        rate = completed / sum(batch.seconds for batch in batches)
        ratio = statistics.median(b.per_second / o.per_second for b, o in zip(batches, baseline, strict=True))
        out.add_row(name, str(completed), str(failed), f"{rate:.1f}", f"{ratio:.3f}")
    return out


async def run(args: argparse.Namespace, workdir: Path) -> None:
    configure(workdir)
    collector = ThreadingHTTPServer(("127.0.0.1", 0), DroppingCollector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    servers: dict[str, LoomServer] = {}
    try:
        for name, env in SETUPS.items():
            env = {key: value or endpoint for key, value in env.items()}
            servers[name] = LoomServer(workdir / name.replace(" ", ""), env).start()
        with console.status("interleaved repetitions"):
            results = await measure(servers, args)
        console.print(table(results))
    finally:
        for server in servers.values():
            server.stop()
        collector.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5, help="runs per client per repetition")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loom-bench-obs-") as workdir:
        asyncio.run(run(args, Path(workdir)))


if __name__ == "__main__":
    main()
