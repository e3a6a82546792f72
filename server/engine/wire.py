"""The langgraph-api wire shapes the routes and the engine both send: runs, checkpoints, interrupts, final values.

Loom's own code (langgraph-api is source-available, not open source); the shapes match what its clients read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Interrupt
from sqlalchemy import inspect

from loom.threads import public_thread_id
from server.db import FeedbackRow, RunRow
from server.responses import Feedback, Run, Usage


@dataclass(frozen=True)
class JsonText:
    """A value already serialised as JSON (a run's stored output): sent as it is, never encoded again."""

    text: str


def run_view(run: RunRow) -> Run:
    """A run as langgraph-api shows it, with Loom's ``attempt``, ``error`` and ``usage``; never the caller's
    authenticated user, which the stored kwargs carry for the worker. ``feedback`` when it was read with the
    run (``server.deps.visible_run``: a single run's read), not on lists or on creation."""
    view: Run = {
        "run_id": run.run_id,
        "thread_id": public_thread_id(run.thread_id) if run.thread_id else None,
        "assistant_id": run.assistant_id,
        "status": run.status,
        "metadata": run.metadata_,
        "kwargs": {key: value for key, value in run.kwargs.items() if key != "auth_user"},
        "multitask_strategy": run.multitask_strategy,
        "attempt": run.attempt,
        "error": run.error,
        "usage": cast(Usage | None, run.usage),  # written by server.engine.usage in this shape
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }
    if "feedback" not in inspect(run).unloaded:
        view["feedback"] = [feedback_view(row) for row in run.feedback]
    return view


def feedback_view(row: FeedbackRow) -> Feedback:
    """One score on a run, as ``POST /runs/{run_id}/feedback`` stored it."""
    return {"feedback_id": row.feedback_id, "run_id": row.run_id, "key": row.key, "score": row.score,
            "comment": row.comment, "created_at": row.created_at}  # fmt: skip


def run_path(run: RunRow) -> str:
    """Where the run is (``Content-Location``): under its thread's public id."""
    return f"/threads/{public_thread_id(run.thread_id or '')}/runs/{run.run_id}"


def output_values(graph: CompiledStateGraph[Any, Any, Any, Any], values: Any, interrupts: list[dict[str, Any]]) -> Any:
    """What ``/wait`` answers: as langgraph-api, the output schema's keys, not internal state, and the
    pending ``__interrupt__`` list, which SDK callers test for to know that the run waits on them."""
    channels = graph.output_channels
    if not isinstance(values, dict):
        return values
    if not isinstance(channels, str):
        values = {key: value for key, value in values.items() if key in channels}
    return {**values, "__interrupt__": interrupts} if interrupts else values


def checkpoint_of(config: RunnableConfig | None) -> dict[str, Any] | None:
    """A checkpoint's config as langgraph-api shows it (``checkpoint``, ``parent_checkpoint``), with the public id."""
    if not config:
        return None
    configurable = config.get("configurable") or {}
    keys = ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")
    checkpoint = {key: configurable.get(key) for key in keys if key in configurable or key == "checkpoint_ns"}
    if isinstance(key := checkpoint.get("thread_id"), str):
        checkpoint["thread_id"] = public_thread_id(key)
    return checkpoint


def interrupt_views(interrupts: Iterable[Interrupt]) -> list[dict[str, Any]]:
    """Interrupts as langgraph-api shows them: ``{id, value}``."""
    return [{"id": i.id, "value": i.value} for i in interrupts]


def debug_checkpoint(payload: dict[str, Any]) -> dict[str, Any]:
    """A ``debug`` checkpoint event's payload with ``checkpoint`` and ``parent_checkpoint`` beside the configs,
    and each task's ``state`` config as its ``checkpoint``: what Studio's timeline reads, as langgraph-api sends."""
    tasks = [
        {key: value for key, value in task.items() if key != "state"} | {"checkpoint": task["state"]["configurable"]}
        if isinstance(task.get("state"), dict) and task["state"].get("configurable")
        else task
        for task in payload.get("tasks") or ()
    ]
    checkpoints = {
        "checkpoint": checkpoint_of(payload.get("config")),
        "parent_checkpoint": checkpoint_of(payload.get("parent_config")),
    }
    return {**payload, **checkpoints, "tasks": tasks}


CONFIG_MODES = frozenset({"checkpoints", "debug", "events"})
"""Stream modes whose parts carry checkpoint configs, so the thread's key, which clients must not see."""


def public_ids(value: Any) -> Any:
    """``value`` with every ``thread_id`` shown as the id its owner knows (``loom.threads``)."""
    if isinstance(value, dict):
        return {
            k: public_thread_id(v) if k == "thread_id" and isinstance(v, str) else public_ids(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [public_ids(item) for item in value]
    return value
