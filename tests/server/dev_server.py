"""``langgraph dev`` in its own process, the reference server Loom is compared against.

``langgraph dev`` resolves graph paths and keeps its ``.langgraph_api`` store relative to its working
directory, so each instance gets a private directory holding a copy of the chosen ``langgraph.json``
with the same graphs, their paths made absolute. Two instances (or another engineer's) never share state.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT, ServerProcess

LANGGRAPH = Path(sys.executable).parent / "langgraph"
QUIET_ENV = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}


def absolute_config(config: Path, workdir: Path) -> Path:
    """The same graphs as ``config``, with paths that do not depend on the working directory."""
    spec = json.loads(config.read_text())
    graphs = {}
    for graph_id, target in spec["graphs"].items():
        path, _, attribute = target.partition(":")
        graphs[graph_id] = f"{(config.parent / path).resolve()}:{attribute}"
    copy = {**spec, "graphs": graphs, "dependencies": [str(PROJECT_ROOT)]}
    target_path = workdir / "langgraph.json"
    target_path.write_text(json.dumps(copy, indent=2))
    return target_path


class LanggraphDev(ServerProcess):
    """Like ``tests.conftest.LiveServer``, for ``langgraph dev --no-browser --no-reload``."""

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
