"""Executing a validated plan: the DAG dispatcher, the synthesis of the answer, and the failure report.

``dispatch`` runs after every wave of steps: it ``Send``s every step whose dependencies are done (they
run at once), asks for a replan of the failed part when steps failed and the budget allows (seed 003:
2 replans per task), and otherwise ends with the answer or a structured failure report, never silence.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.types import Command, Send

from loom.settings import get_settings
from nodes.common.agent import readable_value
from nodes.models import ModelProvider, call_model, model_for
from nodes.plan_execute.plans import blocked_by, dependencies, preview, ready_steps, step_key
from state.common import RequestNotDone
from state.plan_execute import (
    FailureReport,
    PlanExecuteState,
    ReplanRequest,
    StepFailure,
    StepSpec,
    StepTask,
)

SYNTHESIZER = (
    "You answer the user's request from the results of the plan that was run for it. Use only those results: "
    "quote names, numbers and prices exactly, and say plainly when the results do not answer something."
)
MAX_RESULTS_CHARS = 12_000


def intake(state: PlanExecuteState) -> dict[str, Any]:
    """A new request starts a new turn: fresh plan, results and budgets (older turns stay in ``messages``)."""
    request = next((m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), "")
    return {
        "request": request,
        "plan": [],
        "plan_attempts": 0,
        "plan_error": "",
        "feedback": [],
        "permission_warned": False,
        "approved_steps": [],
        "generation": 0,
        "results": None,
        "failures": None,
        "replans": 0,
        "replan": None,
        "report": None,
    }


def dispatch(state: PlanExecuteState) -> Command[Literal["run_step", "planner", "synthesize", "report"]]:
    plan, done = state.get("plan", []), state.get("results") or {}
    generation = state.get("generation", 0)
    failed = [f for f in state.get("failures") or [] if f["generation"] == generation]
    failed_ids = {f["step"] for f in failed}
    if ready := ready_steps(plan, done, failed_ids):
        approved = set(state.get("approved_steps") or [])
        outputs = {step_id: result["output"] for step_id, result in done.items()}
        return Command(goto=[Send("run_step", _task(state, step, outputs, approved, generation)) for step in ready])
    if not failed:
        return Command(goto="synthesize")
    blocked = blocked_by(plan, failed_ids)
    if state.get("replans", 0) < get_settings().plan_max_replans:
        replan = ReplanRequest(failed=failed, blocked=[step for step in plan if step["id"] in blocked])
        update = {"replan": replan, "replans": state.get("replans", 0) + 1, "generation": generation + 1}
        return Command(goto="planner", update={**update, "plan_attempts": 0, "feedback": [], "plan_error": ""})
    reason = f"step {failed[0]['step']} failed and the replan budget ({get_settings().plan_max_replans}) is spent"
    return Command(goto="report", update={"report": failure_report(state, "step_failed", reason, failed[0], "")})


def _task(
    state: PlanExecuteState, step: StepSpec, outputs: dict[str, Any], approved: set[str], generation: int
) -> StepTask:
    return StepTask(
        step=step,
        inputs={dependency: outputs[dependency] for dependency in dependencies(step)},
        request=state.get("request", ""),
        approved=step_key(step) in approved,
        generation=generation,
    )


def quoted_steps(state: PlanExecuteState) -> str:
    """The answer on models that garble what they summarise: each completed step's result, readable."""
    done = state.get("results") or {}
    parts = [
        f"{step['description']} ({step['tool'] or 'reasoning'}):\n{readable_value(done[step['id']]['output'])}"
        for step in state.get("plan", [])
        if step["id"] in done
    ]
    return "\n\n".join(parts) or "The plan produced no results."


def make_synthesizer(models: ModelProvider) -> Any:
    async def synthesize(state: PlanExecuteState, config: RunnableConfig) -> dict[str, Any]:
        if get_settings().quotes_tool_results("synthesizer"):
            return {"messages": [AIMessage(content=quoted_steps(state))]}
        done = state.get("results") or {}
        results = [
            {"step": step["id"], "description": step["description"], "output": done[step["id"]]["output"]}
            for step in state.get("plan", [])
            if step["id"] in done
        ]
        data = json.dumps(results, default=str, ensure_ascii=False)[:MAX_RESULTS_CHARS]
        prompt = [
            SystemMessage(content=SYNTHESIZER),
            HumanMessage(content=f"Request: {state.get('request', '')}\n\nResults of the plan (JSON):\n{data}"),
        ]
        reply, usage = await call_model(
            await model_for(models, "synthesizer"), prompt, node="synthesizer", config=config
        )
        return {"messages": [reply], "usage": [usage]}

    return synthesize


def failure_report(
    state: PlanExecuteState,
    status: Literal["step_failed", "invalid_plan", "rejected"],
    reason: str,
    failure: StepFailure | None,
    error: str,
) -> FailureReport:
    done = state.get("results") or {}
    return FailureReport(
        status=status,
        reason=reason,
        failed_step=failure["step"] if failure else None,
        error=failure["error"] if failure else error,
        partial_results={step_id: result["output"] for step_id, result in done.items()},
        not_run=[step["id"] for step in state.get("plan", []) if step["id"] not in done],
    )


def report(state: PlanExecuteState) -> dict[str, Any]:
    """End with what went wrong and what was achieved: a structured report plus a readable message."""
    failure = state.get("report")
    if failure is None:
        failure = failure_report(state, "step_failed", "the plan stopped without a result", None, "")
    get_stream_writer()({"event": "plan_failed", **failure})
    return {"messages": [AIMessage(content=render_report(state, failure))], "report": failure}


class PlanFailed(RequestNotDone):
    """The request was not done: no valid plan could be made, or a step failed beyond its replans."""


def after_report(state: PlanExecuteState) -> Literal["failed", "__end__"]:
    """A plan the approver rejected ends as asked; one that could not be made or run ends the run ``error``."""
    failure = state.get("report")
    return "__end__" if failure and failure["status"] == "rejected" else "failed"


def failed(state: PlanExecuteState) -> dict[str, Any]:
    """Raise :class:`PlanFailed` after ``report`` has put the reply in the state, so the run's status says it."""
    failure = state.get("report")
    reason = failure["reason"] if failure else "the plan stopped without a result"
    detail = failure["error"][:500] if failure and failure["error"] else ""
    raise PlanFailed(f"{reason}: {detail}" if detail else reason)


def render_report(state: PlanExecuteState, failure: FailureReport) -> str:
    steps = {step["id"]: step for step in state.get("plan", [])}
    lines = [f"I could not complete this request: {failure['reason']}."]
    if failure["failed_step"]:
        step = steps.get(failure["failed_step"])
        tool = step["tool"] if step else None
        lines.append(f"Failed step: {failure['failed_step']} ({tool or 'reasoning'}): {failure['error'][:500]}")
    elif failure["error"]:
        lines.append(f"Details: {failure['error'][:800]}")
    if failure["partial_results"]:
        lines.append("Completed before that:")
        lines += [f"- {step_id}: {preview(output, 200)}" for step_id, output in failure["partial_results"].items()]
    if failure["not_run"]:
        lines.append(f"Not run: {', '.join(failure['not_run'])}.")
    return "\n".join(lines)
