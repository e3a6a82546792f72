"""One attempt of a run: what the engine, observability and usage accounting read about the run it executes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.db import RunRow


@dataclass(frozen=True)
class RunAttempt:
    """A claimed run as one worker executes it, read from its row when the attempt starts."""

    run_id: str
    thread_id: str | None
    """The stored thread's key (``loom.threads``); None only for rows from before every run had a thread."""
    graph_id: str
    assistant_id: str
    owner: str
    """The caller's identity, as the server authenticated it when the run was created."""
    kwargs: Mapping[str, Any]
    """The run body as stored (``preparation.stored_kwargs``), with the caller's ``auth_user`` and ``metadata``."""
    number: int
    """1 for the first attempt; more after the run was taken over from a worker that died."""
    started: float = field(default_factory=time.monotonic)
    """When the attempt began (``time.monotonic``), for the run's duration."""

    @classmethod
    def of(cls, run: RunRow) -> RunAttempt:
        """The attempt about to execute ``run``."""
        return cls(
            run.run_id,
            run.thread_id,
            run.graph_id,
            run.assistant_id,
            run.owner,
            dict(run.kwargs),
            run.attempt,
        )
