"""Concurrency speed-up of the plan-and-execute graph: N independent sleeping steps vs the same steps chained.

    .venv/bin/python bench/plan_execute_parallel.py [--sleep 0.25] [--sizes 1 2 4 8 16] [--repeat 3]

Both plans run through the whole graph (planner → validate → DAG dispatch → synthesize) on the fake
model. In the chained plan every step depends on the previous one, so it runs one step at a time; in
the independent plan ``dispatch`` sends every step at once. Times are the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from graphs.plan_execute import build_graph
from loom.settings import get_settings
from nodes.models.fake import FakeChatModel


@tool
async def nap(seconds: float) -> dict[str, float]:
    """Stand-in for an I/O-bound tool (an API call): waits, then returns."""
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def sleeping_plan(size: int, seconds: float, chained: bool) -> dict[str, Any]:
    steps = [
        {
            "id": f"step_{n}",
            "description": f"nap {n}",
            "tool": "nap",
            "arguments": {"seconds": seconds},
            "depends_on": [f"step_{n - 1}"] if chained and n > 1 else [],
        }
        for n in range(1, size + 1)
    ]
    return {"steps": steps}


async def timed_run(size: int, seconds: float, chained: bool) -> float:
    planner = FakeChatModel(replies=[sleeping_plan(size, seconds, chained)])
    synthesizer = FakeChatModel(replies=["done"])

    def models(role: str) -> BaseChatModel:
        return planner if role == "planner" else synthesizer

    graph = build_graph(models, tools=[nap])
    started = time.perf_counter()
    state = await graph.ainvoke({"messages": [HumanMessage("Take naps")]})
    elapsed = time.perf_counter() - started
    assert len(state["results"]) == size, state.get("report")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sleep", type=float, default=0.25, help="seconds each step sleeps")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["LOOM_DATA_DIR"] = tempfile.mkdtemp(prefix="loom-bench-")
    os.environ["LOOM_PLAN_MAX_STEPS"] = str(max(args.sizes))
    os.environ["LOOM_DIRECT_TOOL_DISPATCH"] = "false"
    get_settings.cache_clear()
    print(f"each step sleeps {args.sleep:g} s; median of {args.repeat} runs\n")
    print(f"{'steps':>5} | {'sequential (chained) s':>22} | {'DAG (independent) s':>19} | {'speed-up':>8}")
    print(f"{'-' * 5}-+-{'-' * 22}-+-{'-' * 19}-+-{'-' * 8}")
    for size in args.sizes:
        chained = statistics.median([await timed_run(size, args.sleep, True) for _ in range(args.repeat)])
        parallel = statistics.median([await timed_run(size, args.sleep, False) for _ in range(args.repeat)])
        print(f"{size:>5} | {chained:>22.3f} | {parallel:>19.3f} | {chained / parallel:>7.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
