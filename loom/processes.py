"""Servers in processes of their own, for the live tests and ``bench/``: Loom, and ``langgraph dev`` to compare.

Each server gets a free 127.0.0.1 port and a log file that is kept for failures; ``start`` returns once
``/ok`` answers. ``langgraph dev`` resolves graph paths and keeps its ``.langgraph_api`` store relative to
its working directory, so each instance gets a private directory holding a copy of the chosen
``langgraph.json`` with the same graphs, their paths made absolute: two instances never share state.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).parent / "langgraph"
QUIET_ENV = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    """Polls ``/ok`` until the process listens; its log tail is in the error if it exits or never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # waiting for a process to listen, not synchronising test steps
    raise TimeoutError(f"{process.args!r} did not start:\n{log.read_text()[-4000:]}")


class ServerProcess:
    """A server in its own process on a free port; its output goes to a log file kept for failures."""

    def __init__(self, log_dir: Path, name: str, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, command: list[str], cwd: Path, timeout_s: float) -> None:
        self.launch(command, cwd)
        self.wait_serving(timeout_s)

    def launch(self, command: list[str], cwd: Path) -> None:
        """The process started, not yet serving: several can be launched at one moment, then waited for."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def wait_serving(self, timeout_s: float) -> None:
        """Returns once ``/ok`` answers; raises with the log's tail if the process exits or never serves."""
        assert self.process is not None, "launch() first"
        try:
            wait_until_serving(self.process, self.url, self.log, timeout_s)
        except TimeoutError:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class LoomServer(ServerProcess):
    """``python -m loom serve`` in its own process on a free port: real uvicorn, real sockets.

    ``role="api"`` adds ``--no-workers`` (an API replica); ``role="worker"`` is ``loom worker``, which
    executes runs and answers only ``/ok`` and ``/info``.
    """

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None, role: str = "serve"
    ) -> None:
        name = "server" if role == "serve" else role
        super().__init__(data_dir, name, {**os.environ, "LOOM_DATA_DIR": str(data_dir), **(env or {})})
        self.data_dir = data_dir
        self.args = args or []
        """Further ``loom serve``/``loom worker`` arguments, e.g. ``["--config", path]``."""
        self.role = role

    def command(self) -> list[str]:
        verb = "worker" if self.role == "worker" else "serve"
        command = [sys.executable, "-m", "loom", verb, "--port", str(self.port), *self.args]
        return [*command, "--no-workers"] if self.role == "api" else command

    def start(self) -> LoomServer:
        self.spawn(self.command(), PROJECT_ROOT, timeout_s=60)
        return self

    def launch_now(self) -> LoomServer:
        """Started without waiting for it to serve (``wait_serving``): for processes that must start together."""
        self.launch(self.command(), PROJECT_ROOT)
        return self


def absolute_config(config: Path, workdir: Path) -> Path:
    """The same graphs as ``config``, with paths that do not depend on the working directory."""
    spec = json.loads(config.read_text())

    def absolute(target: str) -> str:
        path, _, attribute = target.partition(":")
        return f"{(config.parent / path).resolve()}:{attribute}"

    graphs = {graph_id: absolute(target) for graph_id, target in spec["graphs"].items()}
    copy = {**spec, "graphs": graphs, "dependencies": [str(PROJECT_ROOT)]}
    if app := (spec.get("http") or {}).get("app"):  # the routes langgraph dev adds (server/routes/langgraph_dev.py)
        copy["http"] = {**spec["http"], "app": absolute(app)}
    target_path = workdir / "langgraph.json"
    target_path.write_text(json.dumps(copy, indent=2))
    return target_path


class LanggraphDev(ServerProcess):
    """Like :class:`LoomServer`, for ``langgraph dev --no-browser --no-reload``."""

    def __init__(
        self,
        workdir: Path,
        config: Path = PROJECT_ROOT / "langgraph.json",
        env: dict[str, str] | None = None,
        n_jobs_per_worker: int | None = None,
    ) -> None:
        super().__init__(workdir, "langgraph-dev", {**os.environ, **QUIET_ENV, **(env or {})})
        self.workdir = workdir
        self.config = config
        self.n_jobs_per_worker = n_jobs_per_worker

    def command(self) -> list[str]:
        config = absolute_config(self.config, self.workdir)
        command = [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--port", str(self.port)]
        if self.n_jobs_per_worker:
            command += ["--n-jobs-per-worker", str(self.n_jobs_per_worker)]
        return [*command, "--config", str(config)]

    def start(self, timeout_s: float = 120) -> LanggraphDev:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spawn(self.command(), self.workdir, timeout_s)
        return self


@contextmanager
def scratch_postgres_database(admin_url: str, prefix: str = "loom_scratch") -> Iterator[str]:
    """A PostgreSQL database of its own for one test module or measurement, dropped (forcibly) afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
