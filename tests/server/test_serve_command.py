"""``loom serve`` as a newcomer meets it: what it says when it starts, when its port is taken, when it stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from loom.processes import PROJECT_ROOT
from tests.fixtures.servers import new_server, serving


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_a_clean_shutdown_on_sqlite_logs_no_error(stop: signal.Signals, tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        client = get_client(url=server.url)
        thread = (await client.threads.create())["thread_id"]
        assert (await client.runs.wait(thread, "whoami", input={"request": "x"}))["request"] == "x"
        assert server.process is not None
        server.process.send_signal(stop)
        assert server.process.wait(timeout=60) == 0
    log = server.log.read_text()
    assert log.rstrip().endswith(f"Finished server process [{server.process.pid}]"), log[-2000:]
    assert " ERROR " not in log and "Traceback" not in log, log[-4000:]


def test_a_taken_port_fails_at_once_and_says_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = new_server(tmp_path)
        server.port = taken.getsockname()[1]
        finished = subprocess.run(server.command(), cwd=PROJECT_ROOT, env=server.env, capture_output=True, timeout=120)
    output = finished.stdout.decode() + finished.stderr.decode()
    assert finished.returncode == 2, output
    assert f"cannot listen on 127.0.0.1:{server.port}" in output
    assert "--port" in output and "make run PORT=" in output
    assert "startup complete" not in output and "Traceback" not in output


def test_the_banner_names_what_the_process_serves(tmp_path: Path) -> None:
    """A worker has no API docs to point at; a project's own graphs choose their own models."""
    with serving(tmp_path / "own", fixtures=False) as own:
        assert "model fake:echo" in own.log.read_text() and "API docs at /docs" in own.log.read_text()
    config = PROJECT_ROOT / "tests" / "server" / "langgraph.test.json"
    worker = new_server(tmp_path / "worker", role="worker").start()
    worker.stop()
    banner = worker.log.read_text().splitlines()[0]
    assert f"graphs of {config}" in banner and "health at /ok" in banner, banner
    assert "model" not in banner and "/docs" not in banner, banner


def test_the_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    """The README's client example is a whole program (``asyncio.run``), not a fragment for a notebook."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    example = readme.split("the stock client works unchanged:\n\n```python\n", 1)[1].split("```", 1)[0]
    with serving(tmp_path, fixtures=False) as server:
        program = example.replace("http://127.0.0.1:8123", server.url)
        finished = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=120)
    assert finished.returncode == 0, finished.stderr.decode()[-4000:]
    events = [line.split(" ", 1)[0] for line in finished.stdout.decode().splitlines()]
    assert events[0] == "metadata" and "messages" in events, events


def test_make_run_installs_what_serving_needs_not_the_dev_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    planned = subprocess.run(
        ["make", "-n", "run", f"VENV={venv}", "PORT=8200"], cwd=PROJECT_ROOT, capture_output=True, check=True
    ).stdout.decode()
    assert "-e '.[postgres,pdf]'" in planned and "[dev]" not in planned
    assert f"{venv}/bin/loom serve --port 8200" in planned
