"""Continuous batching on the embedded model: 8 content-writer runs at once against the same 8 one after another.

    .venv/bin/python -m bench.embedded_concurrency [--runs 8] [--max-tokens 64] [--parallel 4]

Each run is the assistant graph in process (router → content writer on ``local:smollm2``, in-memory
checkpointer), so the time includes LangGraph and the transport, not only llama.cpp. The sequential pass
runs first, then the concurrent one, on one model server with ``--parallel`` slots; tokens/s counts the
writer's output tokens as the server reported them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graphs.assistant import build_graph
from loom.settings import get_settings
from state.common import RunContext

REQUESTS = [f"Write a short poem about the sea, number {n}." for n in range(64)]


async def one_run(graph: Any, n: int) -> int:
    """One run on a new thread; returns the output tokens the server counted."""
    config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}
    state = await graph.ainvoke({"messages": [HumanMessage(REQUESTS[n])]}, config, context=RunContext())
    return sum(record["output_tokens"] for record in state.get("usage", []))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ.update(
            LOOM_DATA_DIR=data_dir,
            LOOM_MODEL="local:smollm2",
            LOOM_MODEL_MAX_TOKENS=str(args.max_tokens),
            LOOM_LOCAL_PARALLEL=str(args.parallel),
        )
        get_settings.cache_clear()
        graph = build_graph(checkpointer=InMemorySaver())
        await one_run(graph, args.runs)  # load the model and warm the prompt cache
        started = time.perf_counter()
        sequential_tokens = [await one_run(graph, n) for n in range(args.runs)]
        sequential_s = time.perf_counter() - started
        started = time.perf_counter()
        concurrent_tokens = await asyncio.gather(*(one_run(graph, n) for n in range(args.runs)))
        concurrent_s = time.perf_counter() - started
    print(f"{args.runs} content-writer runs, {args.max_tokens} max tokens, {args.parallel} slots")
    for label, seconds, tokens in (
        ("one after another", sequential_s, sum(sequential_tokens)),
        ("all at once", concurrent_s, sum(concurrent_tokens)),
    ):
        print(f"{label:18s} {seconds:6.2f} s  {tokens:5d} tokens  {tokens / seconds:6.1f} tokens/s")
    print(f"{'speed-up':18s} {sequential_s / concurrent_s:6.2f}× wall time")


if __name__ == "__main__":
    asyncio.run(main())
