"""Episodic memory of plan_execute (seed 003): each run leaves an episode; the planner reads similar ones' lessons.

An episode (``services.memory.Episode``) is stored in the caller's store under ``("episodes",)`` after the
answer or the failure report: the goal, the steps, the outcome, and a one-line lesson when a step failed,
the plan was replanned or a human rejected it. The planner's prompt carries "Lessons from similar past tasks".
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langgraph.config import get_config
from langgraph.runtime import Runtime

from loom.threads import public_thread_id
from nodes.common.memory import memory_store
from nodes.plan_execute.execution import after_report
from services.memory import Episode, Outcome, now, record_episode
from state.common import RunContext
from state.plan_execute import PlanExecuteState

LESSONS_HEADER = "Lessons from similar past tasks (plan so that they do not happen again):"


async def remember_episode(state: PlanExecuteState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Stores this run's episode in the caller's store (when memory is on); changes no state."""
    config = get_config()
    store = memory_store(config, runtime)
    if store is not None:
        thread = (config.get("configurable") or {}).get("thread_id")
        await record_episode(store, episode_of(state, public_thread_id(str(thread)) if thread else None))
    return {}


def after_episode(state: PlanExecuteState) -> Literal["failed", "__end__"]:
    """After an answer the run ends; after a failure report, as ``after_report`` decides (``failed`` raises)."""
    return after_report(state) if state.get("report") else "__end__"


def episode_of(state: PlanExecuteState, thread: str | None) -> Episode:
    report, replans = state.get("report"), state.get("replans", 0)
    outcome: Outcome = "failure" if report else "replanned" if replans else "success"
    return Episode(
        goal=state.get("request", ""),
        steps=[f"{step['id']}: {step['tool'] or 'reasoning'}" for step in state.get("plan", [])],
        outcome=outcome,
        lesson=lesson_of(state),
        source_thread=thread,
        created_at=now(),
    )


def lesson_of(state: PlanExecuteState) -> str | None:
    """One line on what went wrong: a human's rejection, else the first failed step and its error; None if nothing."""
    report, failures = state.get("report"), state.get("failures") or []
    if report and report["status"] == "rejected":
        lesson = f"A human rejected the plan: {report['reason']}"
    elif failures:
        failure = failures[0]
        arguments = json.dumps(failure["arguments"], default=str)[:200]
        lesson = f"{failure['tool'] or 'A reasoning step'} failed with {arguments}: {failure['error'][:300]}"
    elif report:
        lesson = f"{report['reason']}: {report['error'][:300]}"
    else:
        return None
    return " ".join(lesson.split())


def lessons_prompt(lessons: list[str]) -> str:
    """The planner's system-prompt block for ``lessons``; empty when there are none."""
    return "\n".join([LESSONS_HEADER, *(f"- {lesson}" for lesson in lessons)]) if lessons else ""
