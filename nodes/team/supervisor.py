"""The supervisor's decision node and its guards: a typed choice each round, and a run that always ends.

The model only proposes. Deterministic code enforces the round limit and detects loops (the same
worker given the same task twice in a row, or a round that changed nothing); the first loop forces
a different, useful worker, the second ends the run with the best work that exists.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.types import Command

from loom.settings import get_settings
from nodes.models import ModelProvider, model_for
from nodes.models.outputs import ask_structured
from nodes.team.workers import cited_sources, latest
from state.supervisor import Decision, Delegation, FinishReason, SupervisorState
from state.team import Worker, WorkerReport

Goto = Literal["researcher", "writer", "reviewer", "finish"]
LOOP_STRIKES_TO_STOP = 2
REPORT_PREVIEW_CHARS = 300

SUPERVISOR_INSTRUCTIONS = """You supervise a team that answers the user's goal.
- researcher: searches the knowledge base and returns notes with cite markers
- writer: writes the piece from the research, citing passages
- reviewer: checks the draft's citations and quality and lists fixes
Delegate one worker at a time with a specific task. Usually: researcher, then writer, then reviewer, then
the writer again if the reviewer asked for fixes. When the draft is good, choose finish with
pass_through "writer" so the article is returned exactly as written."""

DEFAULT_TASKS: dict[Worker, str] = {
    "researcher": "Find passages that support an answer to the goal.",
    "writer": "Write the piece from the research, citing passages by marker.",
    "reviewer": "Review the latest draft and list concrete fixes.",
}


def progress_fingerprint(reports: list[WorkerReport]) -> str:
    """The distinct work the team holds; a round that leaves it unchanged made no progress."""
    distinct = sorted({(r["worker"], r["output"].strip()) for r in reports})
    return hashlib.sha256(repr(distinct).encode()).hexdigest()[:16]


def normalize_task(task: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", task.lower()))


def next_useful_worker(reports: list[WorkerReport], exclude: Worker | None = None) -> Worker | None:
    """Where the usual research → write → review order would go next, skipping ``exclude``."""
    draft = latest(reports, "writer")
    review = latest(reports, "reviewer")
    wanted: list[Worker] = []
    if latest(reports, "researcher") is None:
        wanted.append("researcher")
    if draft is None or (review and reports.index(review) > reports.index(draft)):
        wanted.append("writer")
    if draft is not None and (review is None or reports.index(review) < reports.index(draft)):
        wanted.append("reviewer")
    return next((worker for worker in wanted if worker != exclude), None)


def best_available(reports: list[WorkerReport]) -> tuple[str, str]:
    """(output, author) of the best work so far: the latest draft, else the latest non-empty report."""
    for worker in ("writer", "researcher", "reviewer"):
        report = latest(reports, worker)
        if report and report["output"].strip():
            return report["output"], worker
    return "The team produced no usable output before it had to stop.", "supervisor"


def status_prompt(goal: str, reports: list[WorkerReport], rounds: int, max_rounds: int) -> str:
    lines = [f"Goal: {goal}", f"Round {rounds + 1} of {max_rounds}."]
    for report in reports:
        preview = report["output"][:REPORT_PREVIEW_CHARS].replace("\n", " ")
        lines.append(f'- {report["worker"]} did "{report["instruction"]}": {preview}')
    if not reports:
        lines.append("No worker has reported yet.")
    return "\n".join(lines) + "\nDecide the next step."


async def decide(models: ModelProvider, prompt: str, config: RunnableConfig) -> tuple[Decision | None, list[Any]]:
    """The model's decision, or None when it produced nothing valid (the caller falls back)."""
    messages = [SystemMessage(content=SUPERVISOR_INSTRUCTIONS), HumanMessage(content=prompt)]
    reply = await ask_structured(
        await model_for(models, "supervisor"), Decision, messages, node="supervisor", config=config
    )
    return reply.value, reply.usages


@dataclass
class Round:
    """What one supervisor round decides from: this turn's bookkeeping, the reports, this turn's delegations."""

    turn: dict[str, Any]
    reports: list[WorkerReport]
    history: list[Delegation]
    strikes: int


def round_of(state: SupervisorState) -> Round:
    """A new user message starts a fresh goal, round count and strike count; earlier reports stay as context."""
    human = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
    if state.get("turn_id") == human.id:
        turn = {"turn_id": human.id, "goal": state["goal"], "rounds": state.get("rounds", 0)}
        strikes = state.get("loop_strikes", 0)
    else:
        turn = {"turn_id": human.id, "goal": human.text, "rounds": 0, "loop_strikes": 0, "feedback": ""}
        strikes = 0
    history = [d for d in state.get("delegations", []) if d["turn_id"] == human.id]
    return Round(turn, state.get("reports", []), history, strikes)


def make_supervisor(models: ModelProvider) -> Any:
    async def supervisor(state: SupervisorState, config: RunnableConfig) -> Command[Goto]:
        current = round_of(state)
        if (forced := guard(current)) is not None:
            return forced
        max_rounds = get_settings().supervisor_max_rounds
        prompt = status_prompt(current.turn["goal"], current.reports, current.turn["rounds"], max_rounds)
        decision, current.turn["usage"] = await decide(models, prompt, config)
        return follow(decision, current)

    return supervisor


def guard(current: Round) -> Command[Goto] | None:
    """Checks that need no model: the round limit, and a last round that changed nothing."""
    if current.turn["rounds"] >= get_settings().supervisor_max_rounds:
        return finish_with("round_limit", current)
    last = current.history[-1] if current.history else None
    if last and last["progress_before"] == progress_fingerprint(current.reports):
        return on_loop(f"round {last['round']} ({last['worker']}) changed nothing", last["worker"], current)
    return None


def follow(decision: Decision | None, current: Round) -> Command[Goto]:
    """Carry out the model's decision, unless it repeats the last delegation; no decision falls back."""
    if decision is None:
        fallback = next_useful_worker(current.reports)
        if fallback is None:
            return finish_with("completed", current)
        return delegate(fallback, DEFAULT_TASKS[fallback], "fallback", current)
    if decision.next == "finish":
        return finish_with("completed", current, decision)
    task = decision.task.strip() or DEFAULT_TASKS[decision.next]
    last = current.history[-1] if current.history else None
    if last and last["worker"] == decision.next and normalize_task(last["task"]) == normalize_task(task):
        return on_loop(f"{decision.next} was given the same task twice in a row", decision.next, current)
    return delegate(decision.next, task, "model", current)


def delegate(
    worker: Worker, task: str, decided_by: Literal["model", "fallback", "loop_guard"], current: Round
) -> Command[Goto]:
    record = Delegation(
        turn_id=current.turn["turn_id"],
        round=current.turn["rounds"] + 1,
        worker=worker,
        task=task,
        decided_by=decided_by,
        progress_before=progress_fingerprint(current.reports),
    )
    event = {"event": "supervisor_decision", "round": record["round"], "next": worker, "task": task}
    get_stream_writer()({**event, "decided_by": decided_by})
    update = {**current.turn, "rounds": record["round"], "delegations": [record], "instruction": task}
    return Command(goto=worker, update=update)


def on_loop(reason: str, repeated: Worker, current: Round) -> Command[Goto]:
    """First strike: send a different worker that still has useful work; second strike: stop."""
    strikes = current.strikes + 1
    alternative = next_useful_worker(current.reports, exclude=repeated)
    action = "finish" if strikes >= LOOP_STRIKES_TO_STOP or alternative is None else f"delegate to {alternative}"
    get_stream_writer()({"event": "loop_detected", "reason": reason, "action": action})
    current.turn |= {"loop_strikes": strikes, "loop_events": [reason]}
    if alternative is None or strikes >= LOOP_STRIKES_TO_STOP:
        return finish_with("loop_detected", current)
    return delegate(alternative, DEFAULT_TASKS[alternative], "loop_guard", current)


def finish_with(reason: FinishReason, current: Round, decision: Decision | None = None) -> Command[Goto]:
    """End with the decision's pass-through or answer when it gave one, else the best work that exists."""
    output, author = best_available(current.reports)
    if decision is not None and decision.pass_through != "none":
        if chosen := latest(current.reports, decision.pass_through):
            output, author = chosen["output"], decision.pass_through
    elif decision is not None and decision.final_output.strip():
        output, author = decision.final_output, "supervisor"
    get_stream_writer()({"event": "supervisor_finished", "reason": reason, "final_from": author})
    update = {**current.turn, "finish_reason": reason, "final_output": output, "final_from": author}
    return Command(goto="finish", update=update)


def finish(state: SupervisorState) -> dict[str, Any]:
    """Publish the final output unchanged, with the passages it cites resolved to real sources."""
    output = state.get("final_output", "")
    sources, missing = cited_sources(output, state.get("reports", []))
    return {"messages": [AIMessage(content=output)], "sources": sources, "unresolved_citations": missing}
