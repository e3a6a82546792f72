"""Records shared by every graph's state: run context, usage and artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, TypeVar

from langchain_core.messages import AnyMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

Permission = Literal["read", "write", "destructive"]
T = TypeVar("T")

Messages = Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer)]
"""A conversation channel that checkpoints only each step's new messages, not the whole list again.

With ``add_messages`` every checkpoint re-serialises the full history, so storage grows with the
square of a thread's length (``bench/checkpoint_growth.py``). LangGraph's ``DeltaChannel`` (beta)
stores the writes and rebuilds the list from them, with a full snapshot every 100 updates; LangGraph
gives every message a stable id before it is stored, so ids survive the replay.
"""

USER_TURN = "x-loom-user-turn"
"""Set on a graph's input schema (``user_turn``): an input is one turn of a chat, ``messages`` ending with the
user's own. The server holds inputs to it (a 422 otherwise), and clients see it in the assistant's schemas."""


def user_turn(schema: type[T]) -> type[T]:
    """Marks ``schema`` (an input ``TypedDict``) with :data:`USER_TURN` in its JSON schema."""
    return with_config(ConfigDict(json_schema_extra={USER_TURN: True}))(schema)


class RequestNotDone(Exception):
    """A graph could not do what the user asked. Its reply (already in the state) says why; raising this
    ends the run ``error`` instead of ``success``, with this message as the run's error."""


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
    cost_usd: NotRequired[float | None]
    """USD by the settings' price table; None for a model without a price (records before prices had none)."""


class Artifact(TypedDict):
    """A file a tool produced for this thread (image, chart), stored under the data directory."""

    kind: Literal["image", "chart", "file"]
    name: str
    """Its file name in the thread's artifact folder; never a path on the server, which is not the client's."""
    url: str
    """Where the HTTP API serves it to the thread's owner."""
    title: str
    media_type: str


MemoryKind = Literal["fact", "preference", "instruction"]


class RecalledMemory(TypedDict):
    """A long-term memory recalled for this run (``services.memory``): its store key, text, kind and score."""

    key: str
    text: str
    kind: MemoryKind
    score: float


def append_batches(state: list[Any] | None, writes: Sequence[list[Any]]) -> list[Any]:
    """``operator.add`` over a batch of list writes, in the batch form ``DeltaChannel`` replays."""
    return [*(state or []), *(item for write in writes for item in write)]


UsageLog = Annotated[list[UsageRecord], DeltaChannel(append_batches)]
"""Every model call of the thread, appended; checkpointed as deltas like :data:`Messages`."""
Artifacts = Annotated[list[Artifact], DeltaChannel(append_batches)]
"""Every file the thread's tools produced, appended; checkpointed as deltas like :data:`Messages`."""
