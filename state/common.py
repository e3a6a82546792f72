"""Records shared by every graph's state: run context, usage and artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from typing_extensions import TypedDict

Permission = Literal["read", "write", "destructive"]


@dataclass(frozen=True)
class RunContext:
    """Who a run acts for and what it may do; LangGraph hands it to nodes as ``runtime.context``.

    The HTTP server fills ``user_id`` from the caller's API key, so a client cannot act as
    someone else by sending another id.
    """

    user_id: str = "demo"
    user_name: str = "Demo User"
    permissions: tuple[Permission, ...] = field(default=("read",))


class UsageRecord(TypedDict):
    """One model call: what it cost and how long it took."""

    node: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: float


class Artifact(TypedDict):
    """A file a tool produced for this thread (image, chart), stored under the data directory."""

    kind: Literal["image", "chart", "file"]
    path: str
    url: str
    """Where the HTTP API serves it to the thread's owner."""
    title: str
    media_type: str
