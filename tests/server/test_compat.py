"""Scripted ``langgraph_sdk`` sessions, run against Loom and against ``langgraph dev``: same answers.

The first runs a conversation (streams, state, history); the second the rest of the API: assistant
CRUD with versions, thread search order, ``stream_mode="events"`` and state at a checkpoint.

Both servers load the project's ``langgraph.json`` and inherit the fake model from the test
environment, each with its own data dir. Ids, timestamps and model latencies are normalised away;
everything else in the streams, the final state and the history must match, except what Loom adds
on purpose (:data:`LOOM_ONLY_EVENTS`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError
from langgraph_sdk.schema import ThreadState

from loom.processes import LanggraphDev
from tests.fixtures.servers import serving

pytestmark = pytest.mark.live

LOOM_ONLY_EVENTS = frozenset({"end", "recovered"})
"""``end`` closes every Loom stream with ``{status, interrupts, checkpoint}`` (api.md, "A terminal event");
``recovered`` marks a run resumed after a crash and never appears here. Loom's keep-alive is an SSE
comment, which the SDK never yields as an event, so it needs no exclusion."""
TURNS = ("Search my calendar for AI events", "Write a poem about the sea")
STREAM_MODES = ["values", "updates", "custom"]
CONTEXT = {"user_id": "demo", "user_name": "Demo User"}
"""Named in full: without ``user_name`` Loom uses the caller's user id, the graph's default is "Demo User"."""

ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|call_[0-9a-f]{6,}")
VOLATILE_KEYS = frozenset({"latency_ms", "created_at", "updated_at"})


@dataclass
class Session:
    events: list[tuple[str, Any]]
    state: ThreadState
    history: list[ThreadState]

    def runs(self) -> list[list[tuple[str, Any]]]:
        """The events split per run: each run starts with its ``metadata`` event."""
        runs: list[list[tuple[str, Any]]] = []
        for name, data in self.events:
            if name == "metadata":
                runs.append([])
            runs[-1].append((name, data))
        return runs

    def graph_events(self) -> list[tuple[str, Any]]:
        return [(name, normalise(data)) for name, data in self.events if name not in LOOM_ONLY_EVENTS]


async def scripted_session(url: str) -> Session:
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    events: list[tuple[str, Any]] = []
    for text in TURNS:
        payload: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
        async for part in client.runs.stream(
            thread_id,
            "assistant",
            input=payload,
            stream_mode=STREAM_MODES,  # type: ignore[arg-type]
            context=CONTEXT,
        ):
            events.append((part.event, part.data))
    state = await client.threads.get_state(thread_id)
    history = await client.threads.get_history(thread_id, limit=50)
    return Session(events, state, history)


def normalise(value: Any, key: str | None = None) -> Any:
    """Ids become ``<id>``; timestamps and latencies ``<volatile>``; the rest is compared as is."""
    if key in VOLATILE_KEYS:
        return "<volatile>"
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        return ID.sub("<id>", value)
    return value


def values_of(state: ThreadState) -> dict[str, Any]:
    values = state["values"]
    assert isinstance(values, dict)
    return values


def task_view(task: Any) -> tuple[Any, ...]:
    """A pending task's result is compared by its keys: message ids inside a task's writes are assigned
    by the ``add_messages`` reducer in place, and whether the checkpointer serialised the write before
    or after that is a race (``langgraph dev`` shows ``None``, Loom's async SQLite saver often the id)."""
    return task["name"], task["error"], normalise(task["interrupts"]), sorted(task.get("result") or {})


MOVED_BY_DEV_REPLAY = ("usage_metadata", "invalid_tool_calls")


def as_written(values: Any) -> Any:
    """Undoes what ``langgraph dev`` does to messages it rebuilds from a delta channel.

    The message channels are ``DeltaChannel``s (``state.common.Messages``): a read replays the stored
    writes. ``langgraph dev`` rebuilds AI messages from plain dicts there, which moves their
    ``usage_metadata`` and ``invalid_tool_calls`` into ``additional_kwargs``; Loom's saver returns them
    as written (``assert_loom_keeps_messages_as_written``). Those fields are moved back; the rest of each
    message is compared exactly.
    """
    if not isinstance(values, dict) or not isinstance(values.get("messages"), list):
        return values
    messages = []
    for message in values["messages"]:
        extra = dict(message.get("additional_kwargs") or {})
        moved = {key: extra.pop(key) for key in MOVED_BY_DEV_REPLAY if key in extra}
        messages.append({**message, **moved, "additional_kwargs": extra} if moved else message)
    return {**values, "messages": messages}


def checkpoint_view(state: ThreadState) -> dict[str, Any]:
    """What a client reads from a checkpoint; server-specific metadata keys are left out."""
    metadata = state["metadata"] or {}
    return {
        "values": normalise(as_written(state["values"])),
        "next": state["next"],
        "tasks": [task_view(task) for task in state["tasks"]],
        "interrupts": state["interrupts"],
        "source": metadata.get("source"),
        "step": metadata.get("step"),
        "has_parent": state["parent_checkpoint"] is not None,
        "has_run_id": "run_id" in metadata,
    }


T = TypeVar("T")


async def on_both(tmp_path: Path, session: Callable[[str], Awaitable[T]]) -> tuple[T, T]:
    """``session`` against Loom first, then against ``langgraph dev``, so the two never compete for the CPU."""
    with serving(tmp_path / "loom", fixtures=False) as loom:
        ours = await session(loom.url)
    reference = LanggraphDev(tmp_path / "dev", env={"LOOM_DATA_DIR": str(tmp_path / "dev" / "data")}).start()
    try:
        theirs = await session(reference.url)
    finally:
        reference.stop()
    return ours, theirs


async def test_session_matches_langgraph_dev(tmp_path: Path) -> None:
    ours, theirs = await on_both(tmp_path, scripted_session)
    assert_same_stream(ours, theirs)
    assert_loom_ends_each_run_once(ours, theirs)
    assert_same_state_and_history(ours, theirs)
    assert_loom_keeps_messages_as_written(ours)


def assert_same_stream(loom: Session, reference: Session) -> None:
    assert LOOM_ONLY_EVENTS.isdisjoint(name for name, _ in reference.events)
    assert [name for name, _ in loom.graph_events()] == [name for name, _ in reference.events]
    updates = [[list(data) for name, data in s.events if name == "updates"] for s in (loom, reference)]
    assert updates[0] == updates[1]
    workspace = [["workspace_agent"], ["workspace_approval"], ["workspace_tools"], ["workspace_agent"]]
    first_turn = [["memory"], ["router"], *workspace]
    assert updates[0] == [*first_turn, ["memory"], ["router"], ["content_writer"]]
    assert loom.graph_events() == reference.graph_events()


def assert_loom_ends_each_run_once(loom: Session, reference: Session) -> None:
    assert len(loom.runs()) == len(reference.runs()) == len(TURNS)
    for run in loom.runs():
        assert [name for name, _ in run].count("end") == 1
        assert run[-1][0] == "end" and run[-1][1]["status"] == "success" and run[-1][1]["interrupts"] == []
    for session in (loom, reference):
        assert all(set(data) == {"run_id", "attempt"} for name, data in session.events if name == "metadata")


def assert_same_state_and_history(loom: Session, reference: Session) -> None:
    assert set(ThreadState.__annotations__) <= set(loom.state)
    ours, theirs = values_of(loom.state), values_of(reference.state)
    assert [(m["type"], m["content"]) for m in ours["messages"]] == [
        (m["type"], m["content"]) for m in theirs["messages"]
    ]
    assert ours["route"] == theirs["route"] and ours["route"]["specialist"] == "content_writer"
    assert checkpoint_view(loom.state) == checkpoint_view(reference.state)
    assert [checkpoint_view(c) for c in loom.history] == [checkpoint_view(c) for c in reference.history]


def assert_loom_keeps_messages_as_written(loom: Session) -> None:
    for state in (loom.state, *loom.history):
        for message in values_of(state).get("messages", []):
            assert not set(MOVED_BY_DEV_REPLAY) & set(message["additional_kwargs"]), message
    replies = [m for m in values_of(loom.state)["messages"] if m["type"] == "ai" and not m["tool_calls"]]
    assert replies and all(m["usage_metadata"]["input_tokens"] > 0 for m in replies)


# assistants, state at a checkpoint, thread search order, stream_mode="events" ---------------------------
ASSISTANT_ID = "00000000-0000-4000-8000-00000000c0de"
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
VOLATILE_API_KEYS = VOLATILE_KEYS | {"assistant_id", "thread_id", "checkpoint_id", "run_id", "parent_ids"}


def normalise_api(value: Any, key: str | None = None) -> Any:
    if key in VOLATILE_API_KEYS and value is not None:
        return "<volatile>"
    if isinstance(value, dict):
        return {k: normalise_api(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_api(item) for item in value]
    return value


async def api_session(url: str) -> dict[str, Any]:
    """The same calls against either server; what each answered, with ids and times normalised."""
    client = get_client(url=url)
    seen: dict[str, Any] = {}
    default = await client.assistants.get(str(uuid.uuid5(NAMESPACE_GRAPH, "assistant")))  # dev: a UUID only
    seen["default"] = (default["assistant_id"], default["name"], default["metadata"], default["version"])
    created = await client.assistants.create(
        "assistant", assistant_id=ASSISTANT_ID, name="Writer", metadata={"team": "docs"}, context={"user_name": "Ada"}
    )
    again = await client.assistants.create("assistant", assistant_id=ASSISTANT_ID, if_exists="do_nothing")
    patched = await client.assistants.update(ASSISTANT_ID, name="Writer 2", metadata={"stage": "beta"})
    versions = await client.assistants.get_versions(ASSISTANT_ID)
    latest = await client.assistants.set_latest(ASSISTANT_ID, 1)
    found = await client.assistants.search(metadata={"team": "docs"})
    counted = await client.assistants.count(graph_id="assistant")
    await client.assistants.delete(ASSISTANT_ID)
    remaining = await client.assistants.search(metadata={"team": "docs"})
    seen["assistants"] = normalise_api([created, again, patched, versions, latest, found, counted, remaining])

    tag = {"compat": "sorting"}
    threads = [(await client.threads.create(metadata={**tag, "n": n}))["thread_id"] for n in range(3)]
    orders = []
    for sort_by, sort_order in (("created_at", "asc"), ("created_at", "desc"), ("updated_at", "desc")):
        page = await client.threads.search(metadata=tag, sort_by=sort_by, sort_order=sort_order)  # type: ignore[arg-type]
        orders.append([threads.index(t["thread_id"]) for t in page])
    seen["thread_orders"] = orders

    thread_id = threads[0]
    events = []
    payload: dict[str, Any] = {"messages": [{"role": "user", "content": TURNS[1]}]}
    async for part in client.runs.stream(
        thread_id,
        "assistant",
        input=payload,
        stream_mode="events",
        context=CONTEXT,
    ):
        if part.event == "events":
            events.append((part.data["event"], part.data["name"]))
        elif part.event not in LOOM_ONLY_EVENTS:
            events.append((part.event, None))
    seen["events"] = events
    legacy: list[str] = []
    payload = {"messages": [{"role": "user", "content": TURNS[0]}]}
    parts = client.runs.stream(thread_id, "assistant", input=payload, stream_mode="messages", context=CONTEXT)
    async for part in parts:
        if part.event.startswith("messages/"):
            legacy.append(part.event)
            if part.event != "messages/metadata":
                legacy.append(normalise(part.data[-1]["type"]))
    seen["legacy_messages"] = legacy
    history = await client.threads.get_history(thread_id, limit=50)
    first_input: dict[str, Any] = dict(history[-2])  # both servers add checkpoint_id, the SDK's type does not
    at = await client.threads.get_state(thread_id, checkpoint=first_input["checkpoint"])
    same_checkpoint = at["checkpoint"]["checkpoint_id"] == first_input["checkpoint_id"]
    seen["state_at_checkpoint"] = (checkpoint_view(at), same_checkpoint)
    seen["crons"] = await cron_session(client)
    with pytest.raises(NotFoundError):  # nothing pending: both answer 404 and stop nothing
        await client.runs.cancel_many(status="pending")
    seen["bulk_cancel"] = [run["status"] for run in await client.runs.list(thread_id)]
    return seen


async def cron_session(client: LangGraphClient) -> list[Any]:
    """A cron read, patched and read again (``GET``/``PATCH /runs/crons/{id}``): the fields both servers keep."""
    made = await client.crons.create("assistant", schedule="0 0 1 1 *", metadata={"compat": "cron"})
    path = f"/runs/crons/{made['cron_id']}"
    read = await client.http.get(path)
    patched = await client.crons.update(made["cron_id"], schedule="0 0 1 7 *", enabled=False, metadata={"n": 1})
    again = await client.http.get(path)
    await client.crons.delete(made["cron_id"])
    return [(cron["schedule"], cron["enabled"], cron["metadata"]) for cron in (read, patched, again)]


async def test_api_shapes_match_langgraph_dev(tmp_path: Path) -> None:
    ours, theirs = await on_both(tmp_path, api_session)
    for key in theirs:
        assert ours[key] == theirs[key], key
    assert ours["events"][:2] == [("metadata", None), ("on_chain_start", "assistant")]
    assert ("on_chat_model_stream", "FakeChatModel") in ours["events"]  # tokens, as LangChain's astream_events v2
    assert ours["state_at_checkpoint"][1] and ours["thread_orders"][0] == [0, 1, 2]
