"""The CLI in real processes, on the same engine, database and ids as a live server beside it.

Every command runs a real ``loom`` process; the server is a real ``loom serve`` on the same data directory, driven
by the stock SDK. A thread made on either side is the other's: its row, owner, status, runs and artifacts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from loom.processes import LoomServer
from tests.fixtures.servers import FIXTURE_GRAPHS, PROJECTS, serving

LOOM = str(Path(sys.executable).parent / "loom")
CHART = "Create a chart from this data: Q1 120, Q2 150, Q3 90"
ARTIFACT = re.compile(r"artifact chart: (/threads/\S+/artifacts/chart-\w+\.png)  \((/\S+\.png)\)")
GREETER = PROJECTS / "greeter" / "langgraph.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    """One live server for the module (each test works on threads of its own), on the fake model."""
    with serving(tmp_path_factory.mktemp("cli-server") / "data", fixtures=False) as live:
        yield live


@pytest.fixture
def client(server: LoomServer) -> SyncLangGraphClient:
    return get_sync_client(url=server.url)


def loom(*args: str, data_dir: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``loom …`` in a process of its own; ``data_dir``: the live server's, so both share one database."""
    env = {**os.environ, **({"LOOM_DATA_DIR": str(data_dir)} if data_dir else {})}
    return subprocess.run([LOOM, *args], capture_output=True, text=True, timeout=300, check=False, env=env, input=stdin)


def chart_of(output: str) -> str:
    """The chart's URL as the CLI prints it; the file it names is on disk."""
    found = ARTIFACT.search(output)
    assert found is not None, output
    assert Path(found[2]).read_bytes().startswith(b"\x89PNG")
    return found[1]


def served_png(server: LoomServer, url: str) -> bytes:
    return httpx.get(server.url + url, timeout=30).raise_for_status().content


def test_a_thread_made_over_http_is_read_and_continued_by_the_cli(
    server: LoomServer, client: SyncLangGraphClient
) -> None:
    thread = client.threads.create(thread_id="http-made")["thread_id"]
    client.runs.wait(thread, "assistant", input={"messages": [{"role": "user", "content": CHART}]})
    state = loom("state", thread, data_dir=server.data_dir)
    assert state.returncode == 0, state.stdout + state.stderr
    assert f"human: {CHART}" in state.stdout and f'"url": "/threads/{thread}/artifacts/chart-' in state.stdout
    continued = loom("run", "assistant", "make it shorter", "--thread", thread, data_dir=server.data_dir)
    assert continued.returncode == 0, continued.stdout + continued.stderr
    assert "echo: make it shorter" in continued.stdout
    runs = client.runs.list(thread)
    assert [run["status"] for run in runs] == ["success", "success"]
    assert client.threads.get(thread)["status"] == "idle"
    assert len(client.threads.get_state(thread)["values"]["messages"]) == 6  # type: ignore[call-overload]


def test_history_prints_whole_checkpoint_ids_and_what_wrote_each(
    server: LoomServer, client: SyncLangGraphClient
) -> None:
    thread = client.threads.create()["thread_id"]
    client.runs.wait(thread, "assistant", input={"messages": [{"role": "user", "content": CHART}]})
    history = loom("history", thread, data_dir=server.data_dir)
    assert history.returncode == 0, history.stdout + history.stderr
    header, *lines = history.stdout.splitlines()
    starts = [header.index(name) for name in ("checkpoint", "step", "source", "next", "writes")]
    rows = [[line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)] for line in lines]
    assert [row[0] for row in rows] == [c["checkpoint_id"] for c in client.threads.get_history(thread, limit=20)]
    writes = {row[1]: row[4] for row in rows}  # step → the nodes whose output made that checkpoint
    assert [writes[step] for step in "0124"] == ["__start__", "memory", "router", "analyst_tools"]


def test_a_thread_made_by_the_cli_is_the_server_s(server: LoomServer, client: SyncLangGraphClient) -> None:
    made = loom("run", "assistant", CHART, "--thread", "cli-made", data_dir=server.data_dir)
    assert made.returncode == 0, made.stdout + made.stderr
    url = chart_of(made.stdout)
    assert url.startswith("/threads/cli-made/artifacts/") and served_png(server, url).startswith(b"\x89PNG")
    thread = client.threads.get("cli-made")
    assert thread["status"] == "idle" and thread["metadata"]["graph_id"] == "assistant"
    assert [run["status"] for run in client.runs.list("cli-made")] == ["success"]
    state = client.threads.get_state("cli-made")
    assert [a["url"] for a in state["values"]["artifacts"]] == [url]  # type: ignore[call-overload]
    answer = client.runs.wait("cli-made", "assistant", input={"messages": [{"role": "user", "content": "thanks"}]})
    assert answer["messages"][-1]["content"] == "echo: thanks"  # type: ignore[index,call-overload]


def test_resume_runs_what_the_server_left_interrupted(server: LoomServer, client: SyncLangGraphClient) -> None:
    thread = client.threads.create()["thread_id"]
    message = {"messages": [{"role": "user", "content": CHART}]}
    client.runs.wait(thread, "assistant", input=message, interrupt_before=["analyst_tools"])
    assert client.threads.get(thread)["status"] == "interrupted"
    assert "next: ['analyst_tools']" in loom("state", thread, data_dir=server.data_dir).stdout
    resumed = loom("resume", thread, data_dir=server.data_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert served_png(server, chart_of(resumed.stdout)).startswith(b"\x89PNG")
    assert client.threads.get(thread)["status"] == "idle"
    assert [run["status"] for run in client.runs.list(thread)] == ["success", "interrupted"]  # newest first
    again = loom("resume", thread, data_dir=server.data_dir)
    assert again.returncode == 2 and f"thread {thread!r} has nothing to resume" in again.stdout


def test_chat_keeps_one_thread_across_turns(server: LoomServer, client: SyncLangGraphClient) -> None:
    chat = loom("chat", "--thread", "cli-chat", data_dir=server.data_dir, stdin=f"{CHART}\nmake it shorter\n\n")
    assert chat.returncode == 0, chat.stdout + chat.stderr
    assert served_png(server, chart_of(chat.stdout)).startswith(b"\x89PNG")
    assert "echo: make it shorter" in chat.stdout
    assert [run["status"] for run in client.runs.list("cli-chat")] == ["success", "success"]


def test_a_long_tool_result_is_cut_with_an_ellipsis() -> None:
    result = loom("run", "assistant", "Search my calendar for AI events")
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("search_calendar → ")]
    assert line.endswith("…") and len(line.removeprefix("search_calendar → ")) == 300


def test_a_reply_that_is_not_streamed_token_by_token_is_printed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_QUOTE_TOOL_RESULTS", "true")  # the reply is built from the results, not generated
    result = loom("run", "assistant", "Search my calendar for AI events")
    assert result.returncode == 0, result.stderr
    assert "calendar matching “AI”:" in result.stdout and "- AI Workshop · " in result.stdout


def test_a_served_project_s_graph_runs_with_its_own_context() -> None:
    config = ("--config", str(GREETER))
    default = loom("run", "greeter", "hi", "--thread", "g-1", *config)
    assert default.returncode == 0, default.stdout + default.stderr
    assert "Hello, demo! (turn 1)" in default.stdout
    howdy = loom("run", "greeter", "hi", "--thread", "g-1", "--context", '{"greeting": "Howdy"}', *config)
    assert "Howdy, demo! (turn 2)" in howdy.stdout
    assert loom("state", "g-1", *config).stdout.count("human: hi") == 2


def test_resume_answers_a_pending_interrupt_with_a_value() -> None:
    config = ("--config", str(FIXTURE_GRAPHS))
    asked = loom("run", "approval", "--input", '{"request": "refund"}', "--thread", "ask-1", *config)
    assert asked.returncode == 0 and 'waiting for input {"question": "approve refund?"}' in asked.stdout
    unanswered = loom("resume", "ask-1", *config)
    assert unanswered.returncode == 2 and "give it with --value JSON" in unanswered.stdout
    answered = loom("resume", "ask-1", "--value", '"yes"', *config)
    assert answered.returncode == 0 and "run success" in answered.stdout
    assert '"decision": "yes"' in loom("state", "ask-1", *config).stdout


def test_an_api_key_acts_as_its_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_API_KEYS", '{"ada": "key-ada", "bob": "key-bob"}')
    made = loom("run", "assistant", "hello", "--thread", "mine", "--api-key", "key-ada")
    assert made.returncode == 0 and "echo: hello" in made.stdout
    assert "human: hello" in loom("state", "mine", "--user", "ada").stdout
    assert loom("state", "mine", "--api-key", "key-bob").stdout.strip() == "error: thread 'mine' not found"
    unnamed = loom("state", "mine")
    assert unnamed.returncode == 2 and "name one with --user or --api-key" in unnamed.stdout
    wrong = loom("state", "mine", "--api-key", "nope")
    assert wrong.returncode == 2 and "a valid API key is required" in wrong.stdout


def test_bad_names_are_clear_errors() -> None:
    unknown = loom("run", "missing", "hi")
    assert unknown.returncode == 2 and "assistant 'missing' not found" in unknown.stdout
    not_a_dict = loom("run", "assistant", "--input", "[1]")
    assert not_a_dict.returncode == 2 and "input: Input should be a valid dictionary" in not_a_dict.stdout
    bad_id = loom("run", "assistant", "hi", "--thread", "a~b")
    assert bad_id.returncode == 2 and "--thread: String should match pattern" in bad_id.stdout
    assert loom("graphs").stdout.startswith("assistant ")
