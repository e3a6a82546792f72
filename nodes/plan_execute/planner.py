"""Planning nodes: the planner (rules first, then a constrained LLM), validation and human approval.

The planner's output is held to a JSON schema (tool names from the registry, a step limit), so even
the embedded model yields a well-formed plan; validation then checks what a schema cannot (argument
types per tool, dependencies, cycles, permissions) and sends precise errors back a bounded number of
times. A plan that writes or destroys pauses for a human with ``interrupt()`` before any step runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import ValidationError

from loom.settings import get_settings
from nodes.common.approval import Decision, PlanAnswer, review_request
from nodes.common.memory import memory_store
from nodes.common.permissions import is_granted, permission_of
from nodes.models import ModelProvider, model_for
from nodes.models.outputs import ask_structured
from nodes.plan_execute.episodes import lessons_prompt
from nodes.plan_execute.execution import failure_report
from nodes.plan_execute.plans import plan_json_schema, preview, signature, step_key, to_specs, validate_plan
from nodes.plan_execute.rules import shop_plan
from services.memory import lessons_for
from services.stores.shop import get_shop
from state.common import RunContext, UsageRecord
from state.hitl import ActionRequest, EditDecision, RejectDecision
from state.plan_execute import Plan, PlanExecuteState, StepSpec

PLANNER = """You plan how to answer the user's request with tools. Reply with JSON only: {{"steps": [...]}}.
Each step has: "id" ("step_1", "step_2", …), "description" (one sentence), "tool" (a tool below, or null for a
reasoning step that thinks over earlier results), "arguments" (that tool's arguments) and "depends_on" (ids of
the steps whose results it needs). To pass an earlier result as an argument write {{"$ref": "step_1"}}
(or {{"ref": "step_1"}}) for the whole result, or {{"$ref": "step_1.item_ids"}} for one field. Steps that do
not depend on each other run in parallel. Use at most {max_steps} steps, and only these tools:
{tools}"""
PERMISSION_HINT = "If the request cannot be done without it, keep the step: a human will be asked to approve it."


def rule_plan(request: str) -> list[StepSpec] | None:
    """A plan for plain shop requests, from the catalogue's categories and styles (a database read: call off-loop)."""
    shop = get_shop()
    steps = shop_plan(request, shop.categories(), shop.styles())
    return to_specs(steps) if steps else None


def make_planner(models: ModelProvider, tools: Mapping[str, BaseTool]) -> Any:
    async def planner(state: PlanExecuteState, config: RunnableConfig, runtime: Runtime[RunContext]) -> dict[str, Any]:
        settings = get_settings()
        attempt = state.get("plan_attempts", 0) + 1
        first_try = attempt == 1 and not state.get("replan")
        if first_try:  # lessons of similar past runs, once a turn; with any, the rules' plan is not trusted
            state = {**state, "lessons": await _lessons(state, config, runtime)}
        learned = {"lessons": state.get("lessons", [])}
        by_rules = first_try and settings.direct_tool_dispatch and not state["lessons"]
        if by_rules and (steps := await asyncio.to_thread(rule_plan, state.get("request", ""))):
            return {**_planned(state, steps, "rules", attempt, []), **learned}
        schema = plan_json_schema(tools, settings.plan_max_steps)
        messages = planner_messages(state, tools, settings.plan_max_steps)
        reply = await ask_structured(
            await model_for(models, "planner"), schema, messages, node="planner", config=config
        )
        try:
            if reply.value is None:
                raise ValueError(reply.error or "no JSON")
            plan = Plan.model_validate(reply.value)
        except (ValueError, ValidationError) as exc:  # no JSON, or JSON of the wrong shape
            return {"plan_attempts": attempt, "plan_error": not_a_plan(exc), "usage": reply.usages, **learned}
        return {**_planned(state, _merge(state, to_specs(plan.steps)), "llm", attempt, reply.usages), **learned}

    return planner


async def _lessons(state: PlanExecuteState, config: RunnableConfig, runtime: Runtime[RunContext]) -> list[str]:
    store = memory_store(config, runtime)
    return await lessons_for(store, state.get("request", "")) if store is not None else []


def not_a_plan(error: Exception) -> str:
    return f"Your last reply was not a plan ({str(error)[:500]}). Reply with the JSON plan only."


def _merge(state: PlanExecuteState, new_steps: list[StepSpec]) -> list[StepSpec]:
    """A replan replaces only the failed part: completed steps stay, with their results."""
    if not state.get("replan"):
        return new_steps
    done = state.get("results") or {}
    kept = [step for step in state.get("plan", []) if step["id"] in done]
    return kept + [step for step in new_steps if step["id"] not in done]


def _planned(
    state: PlanExecuteState,
    steps: list[StepSpec],
    source: Literal["rules", "llm"],
    attempt: int,
    usage: list[UsageRecord],
) -> dict[str, Any]:
    writer = get_stream_writer()
    if replan := state.get("replan"):
        done = state.get("results") or {}
        new = [step for step in steps if step["id"] not in done]
        failed = [failure["step"] for failure in replan["failed"]]
        writer(
            {
                "event": "replanned",
                "replans": state.get("replans", 0),
                "failed": failed,
                "kept": list(done),
                "steps": new,
            }
        )
    else:
        writer({"event": "plan_created", "source": source, "attempt": attempt, "steps": steps})
    return {"plan": steps, "plan_source": source, "plan_attempts": attempt, "plan_error": "", "usage": usage}


def planner_messages(state: PlanExecuteState, tools: Mapping[str, BaseTool], max_steps: int) -> list[BaseMessage]:
    listing = "\n".join(f"- {signature(t)} [{permission_of(t)}]: {t.description}" for t in tools.values())
    messages: list[BaseMessage] = [
        SystemMessage(content=PLANNER.format(max_steps=max_steps, tools=listing) + lessons_block(state)),
        HumanMessage(content=state.get("request", "")),
    ]
    if replan := state.get("replan"):
        messages.append(HumanMessage(content=replan_brief(state, replan["failed"], replan["blocked"])))
    if state.get("plan_error"):
        messages.append(HumanMessage(content=state["plan_error"]))
    elif state.get("feedback"):
        messages.append(AIMessage(content=json.dumps({"steps": state.get("plan", [])}, default=str)))
        problems = "\n".join(f"- {problem}" for problem in state["feedback"])
        messages.append(HumanMessage(content=f"That plan was rejected:\n{problems}\nReply with a corrected plan."))
    return messages


def lessons_block(state: PlanExecuteState) -> str:
    lessons = lessons_prompt(state.get("lessons") or [])
    return f"\n{lessons}" if lessons else ""


def replan_brief(state: PlanExecuteState, failed: Sequence[Any], blocked: Sequence[StepSpec]) -> str:
    done = state.get("results") or {}
    lines = ["Part of the plan failed. These steps completed; reference their results with $ref, do not repeat them:"]
    lines += [f"- {step_id} ({r['tool'] or 'reasoning'}): {preview(r['output'])}" for step_id, r in done.items()]
    lines += ["These steps failed after their retries:"]
    lines += [
        f"- {f['step']} {f['tool']}({json.dumps(f['arguments'], default=str)}): {f['error'][:500]}" for f in failed
    ]
    if blocked:
        lines += ["These steps did not run because they depend on a failed step:"]
        lines += [f"- {step['id']}: {step['description']}" for step in blocked]
    lines.append("Reply with new steps (new ids) that replace only the failed and blocked steps.")
    return "\n".join(lines)


def make_validator(tools: Mapping[str, BaseTool]) -> Any:
    def validate(
        state: PlanExecuteState, runtime: Runtime[RunContext]
    ) -> Command[Literal["planner", "approve", "dispatch", "report"]]:
        settings = get_settings()
        plan, done = state.get("plan", []), state.get("results") or {}
        check = validate_plan(
            plan, tools, runtime.context or RunContext(), completed=done, max_steps=settings.plan_max_steps
        )
        errors = [state["plan_error"]] if state.get("plan_error") else check.errors
        warnings = [] if state.get("permission_warned") else [f"{w} {PERMISSION_HINT}" for w in check.ungranted]
        attempts = state.get("plan_attempts", 0)
        if (errors or warnings) and attempts < settings.plan_max_attempts:
            get_stream_writer()({"event": "plan_invalid", "attempt": attempts, "errors": errors + warnings})
            update = {
                "feedback": errors + warnings,
                "permission_warned": state.get("permission_warned") or bool(warnings),
            }
            return Command(goto="planner", update=update)
        if errors:
            reason = f"no valid plan after {attempts} attempts"
            report = failure_report(state, "invalid_plan", reason, None, "; ".join(errors))
            return Command(goto="report", update={"report": report})
        approved = set(state.get("approved_steps") or [])
        pending = [step for step in plan if step["id"] in check.risky and step_key(step) not in approved]
        return Command(goto="approve" if pending else "dispatch", update={"feedback": [], "replan": None})

    return validate


def make_approval(tools: Mapping[str, BaseTool]) -> Any:
    def approve(
        state: PlanExecuteState, runtime: Runtime[RunContext]
    ) -> Command[Literal["validate", "dispatch", "report"]]:
        context = runtime.context or RunContext()
        approved = list(state.get("approved_steps") or [])
        used = [(step, tool) for step in state["plan"] if (tool := tools.get(step["tool"] or ""))]
        pending = [(s, t) for s, t in used if permission_of(t) != "read" and step_key(s) not in approved]
        details = [
            {**step, "permission": permission_of(tool), "granted": is_granted(tool, context)} for step, tool in pending
        ]
        actions = [
            ActionRequest(name=t.name, args=s["arguments"], description=f"{s['id']}: {s['description']}")
            for s, t in pending
        ]
        request = {
            **review_request(actions, tools),
            "type": "plan_approval",
            "request": state.get("request", ""),
            "plan": state["plan"],
            "steps_to_approve": details,
        }
        answer = interrupt(request, response_schema=PlanAnswer.asking(actions))
        return _decided(state, [step for step, _ in pending], answer.decisions())

    return approve


def _decided(
    state: PlanExecuteState, asked: Sequence[StepSpec], decisions: Sequence[Decision]
) -> Command[Literal["validate", "dispatch", "report"]]:
    """A rejection reports; approvals dispatch; edited arguments replace the step's and the plan is validated again."""
    if rejected := [d.message or "no reason given" for d in decisions if isinstance(d, RejectDecision)]:
        reason = f"the plan was rejected by the approver: {'; '.join(rejected)}"
        return Command(goto="report", update={"report": failure_report(state, "rejected", reason, None, "")})
    answered = zip(asked, decisions, strict=True)
    edits = {step["id"]: d.edited_action.args for step, d in answered if isinstance(d, EditDecision)}
    plan = [StepSpec(**{**step, "arguments": edits.get(step["id"], step["arguments"])}) for step in state["plan"]]
    ids = {step["id"] for step in asked}
    approved = list(state.get("approved_steps") or []) + [step_key(step) for step in plan if step["id"] in ids]
    if not edits:
        return Command(goto="dispatch", update={"approved_steps": approved})
    return Command(goto="validate", update={"approved_steps": approved, "plan": plan})
