"""Does an embedded Loom server's memory stay flat over many runs? (Event streams must be evicted.)

    .venv/bin/python -m bench.memory_flat [--runs 5000] [--clients 20]

Starts ``loom serve`` with default settings on the fake model in a temporary directory, makes
``--runs`` stateless ``runs.wait`` calls of the 1-node benchmark graph from ``--clients`` clients, and
prints the server's resident memory (VmRSS) after each fifth of them. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from langgraph_sdk import get_client
from rich.console import Console
from rich.table import Table

from bench.server_latency import INPUT, configure
from loom.processes import LoomServer

console = Console(width=100)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def measure(url: str, pid: int, runs: int, clients: int) -> list[tuple[int, float]]:
    done = 0
    samples = [(0, rss_mib(pid))]
    step = max(runs // 5, 1)

    async def one_client(share: int) -> None:
        nonlocal done
        async with get_client(url=url, timeout=60) as client:
            for _ in range(share):
                await client.runs.wait(None, "one_node", input=INPUT)
                done += 1
                if done % step == 0:
                    samples.append((done, rss_mib(pid)))

    shares = [runs // clients + (1 if index < runs % clients else 0) for index in range(clients)]
    await asyncio.gather(*(one_client(share) for share in shares))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loom-memory-") as workdir:
        configure(Path(workdir))
        server = LoomServer(Path(workdir) / "loom").start()
        try:
            assert server.process is not None
            samples = asyncio.run(measure(server.url, server.process.pid, args.runs, args.clients))
        finally:
            server.stop()
    table = Table(title=f"Embedded Loom server RSS over {args.runs} runs (defaults, fake model)")
    table.add_column("runs done", justify="right")
    table.add_column("RSS MiB", justify="right")
    for done, mib in samples:
        table.add_row(str(done), f"{mib:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
