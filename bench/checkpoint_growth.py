"""How checkpoint storage grows on one long assistant thread (api.md, "Bounded storage").

    .venv/bin/python -m bench.checkpoint_growth [--turns 40]

Runs the assistant graph in-process on the fake model with Loom's default checkpointer (SQLite,
``durability="sync"``), one user message per turn, and after each turn sums the bytes the thread
holds in the ``checkpoints`` and ``writes`` tables. "Messages once" is what storing each message a
single time would take. With ``add_messages`` channels every checkpoint re-serialises the whole
history, so bytes per turn grow with the conversation and the total grows quadratically; Loom's
``DeltaChannel`` message, usage and artifact channels (``state/common.py``) keep bytes per turn flat.
Works in a temporary directory; prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from rich.console import Console
from rich.table import Table

from graphs.assistant import build_graph
from loom.persistence import open_checkpointer
from loom.settings import get_settings
from loom.sqlite_saver import ThreadedSqliteSaver

PROMPTS = ("Write a poem about the sea", "Search my calendar for AI events", "Write a Python function to add numbers")
THREAD: RunnableConfig = {"configurable": {"thread_id": "long-thread"}}
console = Console(width=100)  # wide enough for the tables when piped (rich assumes 80 columns)


@dataclass
class Turn:
    number: int
    messages: int
    checkpoints: int
    stored: int
    messages_once: int


def stored_bytes(saver: ThreadedSqliteSaver, thread_id: str) -> tuple[int, int]:
    """(checkpoints, bytes) the thread holds: checkpoint and metadata blobs plus pending writes."""
    with saver.cursor(transaction=False) as cursor:
        query = "SELECT count(*), coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints"
        count, checkpoint_bytes = cursor.execute(query + " WHERE thread_id = ?", (thread_id,)).fetchone() or (0, 0)
        query = "SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?"
        (write_bytes,) = cursor.execute(query, (thread_id,)).fetchone() or (0,)
    return int(count), int(checkpoint_bytes) + int(write_bytes)


async def run_turns(turns: int) -> list[Turn]:
    async with open_checkpointer(get_settings()) as saver:
        assert isinstance(saver, ThreadedSqliteSaver), "this benchmark reads the SQLite saver's tables"
        graph = build_graph(checkpointer=saver)
        results = []
        for number in range(1, turns + 1):
            prompt = PROMPTS[(number - 1) % len(PROMPTS)]
            turn_input: Any = {"messages": [{"role": "user", "content": prompt}]}
            await graph.ainvoke(turn_input, THREAD, durability="sync")
            messages: list[Any] = (await graph.aget_state(THREAD)).values["messages"]
            once = sum(len(saver.serde.dumps_typed(message)[1]) for message in messages)
            count, stored = await asyncio.to_thread(stored_bytes, saver, THREAD["configurable"]["thread_id"])
            results.append(Turn(number, len(messages), count, stored, once))
        return results


def growth_table(turns: list[Turn]) -> Table:
    table = Table(title=f"Checkpoint storage in KiB, one assistant thread, {len(turns)} turns (fake model, SQLite)")
    columns = ("turn", "messages", "checkpoints", "stored", "+ this turn", "messages once", "stored ÷ once")
    for column in columns:
        table.add_column(column, justify="right")
    shown = {1, 2, 5, 10, 20, 40, 80, 160, len(turns)}
    for index, turn in enumerate(turns):
        if turn.number not in shown:
            continue
        added = turn.stored - (turns[index - 1].stored if index else 0)
        table.add_row(
            str(turn.number),
            str(turn.messages),
            str(turn.checkpoints),
            f"{turn.stored / 1024:.0f}",
            f"{added / 1024:.1f}",
            f"{turn.messages_once / 1024:.1f}",
            f"{turn.stored / turn.messages_once:.0f}×",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=40, help="user messages on the thread")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loom-growth-") as workdir:
        os.environ.update(
            LOOM_MODEL="fake:echo", LOOM_DATA_DIR=str(Path(workdir)), OPENAI_BASE_URL="http://127.0.0.1:9/v1"
        )
        get_settings.cache_clear()
        with console.status(f"{args.turns} turns"):
            turns = asyncio.run(run_turns(args.turns))
    console.print(growth_table(turns))


if __name__ == "__main__":
    main()
