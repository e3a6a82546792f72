"""The CLI in real processes: threads persist on disk and resume in a new process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LOOM = str(Path(sys.executable).parent / "loom")


def loom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LOOM, *args], capture_output=True, text=True, timeout=120, check=False)


def test_lists_graphs() -> None:
    result = loom("graphs")
    assert result.returncode == 0 and "assistant" in result.stdout


def test_a_thread_continues_in_a_new_process() -> None:
    first = loom("run", "assistant", "Write a poem about the sea", "--thread", "t-cli")
    assert first.returncode == 0, first.stderr
    assert "echo: Write a poem about the sea" in first.stdout
    second = loom("run", "assistant", "make it shorter", "--thread", "t-cli")
    assert "echo: make it shorter" in second.stdout
    state = loom("state", "t-cli")
    assert state.stdout.count("human:") == 2 and '"stage": "follow_up"' in state.stdout
    history = loom("history", "t-cli")
    assert history.returncode == 0 and history.stdout.count("router") >= 2


def test_a_reply_that_is_not_streamed_token_by_token_is_printed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_QUOTE_TOOL_RESULTS", "true")  # the reply is built from the results, not generated
    result = loom("run", "assistant", "Search my calendar for AI events")
    assert result.returncode == 0, result.stderr
    assert "calendar matching “AI”:" in result.stdout and "- AI Workshop · " in result.stdout


def test_an_interrupted_run_resumes_without_rerunning_finished_nodes() -> None:
    """Leg one stops after the tool node (as a crash would); leg two resumes from the checkpoint."""
    leg_one = textwrap.dedent(
        """
        import asyncio
        from langchain_core.messages import HumanMessage
        from graphs.assistant import build_graph
        from loom.persistence import open_checkpointer
        from loom.settings import get_settings

        async def main():
            async with open_checkpointer(get_settings()) as saver:
                graph = build_graph(checkpointer=saver)
                await graph.ainvoke(
                    {"messages": [HumanMessage("Search my calendar for AI events")]},
                    {"configurable": {"thread_id": "t-crash"}},
                    interrupt_after=["workspace_tools"],
                )

        asyncio.run(main())
        """
    )
    subprocess.run([sys.executable, "-c", leg_one], check=True, timeout=120, cwd=Path(__file__).parents[2])
    pending = loom("state", "t-crash")
    assert "next: ['workspace_agent']" in pending.stdout
    resumed = loom("resume", "t-crash")
    assert resumed.returncode == 0, resumed.stderr
    assert "echo: Search my calendar for AI events" in resumed.stdout
    final = loom("state", "t-crash")
    assert final.stdout.count("tool:") == 1 and "next: []" in final.stdout


def test_unknown_graph_is_a_clear_error() -> None:
    result = loom("state", "nope", "--graph", "missing")
    assert result.returncode == 2 and "unknown graph 'missing'" in result.stdout
