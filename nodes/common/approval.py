"""Human approval of destructive tool calls, and the gate every tool call passes (seed 003).

The approval node runs between an agent and its tools when the agent asked for a destructive
action: it pauses the run with one ``interrupt()`` for the message's destructive calls, in LangChain's
human-in-the-loop shape (``state/hitl.py``) so stock UIs can answer it, showing each exact tool and
arguments, and records each decision (approve, edit the arguments, reject with a reason). The tool
gate, ToolNode's ``awrap_tool_call``, then enforces every call: an unknown tool or invalid
arguments come back as an error that lists what is valid and counts against the run's retry
budget; write tools need the run's grant; destructive tools run only as a human decided.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar, Generic, Self, TypeVar

from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command, interrupt
from pydantic import BaseModel, RootModel, ValidationError, model_validator

from nodes.common.agent import messages_this_turn
from nodes.common.permissions import is_granted, needs_approval, permission_of
from nodes.common.toolsets import ToolSource, args_schema, with_found
from state.common import RunContext
from state.hitl import (
    ALL_DECISIONS,
    Action,
    ActionRequest,
    ApproveDecision,
    EditDecision,
    HITLResponse,
    RejectDecision,
    ReviewConfig,
)
from state.plan_execute import PlanDecision
from state.support import Approval, ApprovalDecision

INVALID_CALL = "invalid_call"
"""``response_metadata`` flag on a ToolMessage that answered an unknown tool or invalid arguments."""

Recorder = Callable[[Any, ToolCall, Approval | None], None]
"""Called with (state, call, None) when approval is asked and (state, call, approval) once decided."""
AllowedTools = Callable[[Any], Collection[str]]
"""The tool names the agent now acting may call, given the graph state."""


def call_id(call: ToolCall) -> str:
    return call["id"] or ""


def invalid_calls_this_turn(messages: Sequence[AnyMessage]) -> int:
    return sum(
        isinstance(m, ToolMessage) and bool(m.response_metadata.get(INVALID_CALL)) for m in messages_this_turn(messages)
    )


def pending_approvals(message: AnyMessage, tools: Sequence[BaseTool], decided: Collection[str] = ()) -> list[ToolCall]:
    """The destructive calls in ``message`` that no human has decided yet."""
    if not isinstance(message, AIMessage):
        return []
    destructive = {t.name for t in tools if needs_approval(t)}
    return [c for c in message.tool_calls if c["name"] in destructive and c["id"] not in decided]


def widened(allowed: AllowedTools, found: Sequence[BaseTool]) -> AllowedTools:
    """``allowed`` plus the ``found`` tools, which every agent a node serves may call."""
    names = {t.name for t in found}
    return lambda state: {*allowed(state), *names}


def make_approval_node(
    own: Sequence[BaseTool], allowed: AllowedTools, record: Recorder | None = None, found: ToolSource | None = None
) -> Any:
    """Asks a human about the destructive calls among ``own`` and ``found`` tools (found ones: any agent may call).

    Without ``found`` the node is sync, so a recorder that writes to a database runs in LangGraph's thread pool.
    """

    def decide(state: dict[str, Any], tools: Sequence[BaseTool]) -> dict[str, Any]:
        by_name, may_call = {t.name: t for t in tools}, widened(allowed, tools[len(own) :])
        valid = [t for t in tools if t.name in may_call(state)]
        calls = [
            call
            for call in pending_approvals(state["messages"][-1], tools, state.get("approvals") or {})
            if check_call(call, by_name[call["name"]], valid) is None  # nobody is asked about a call that cannot run
        ]
        if not calls:
            return {"approvals": {}}
        for call in calls:
            if record:
                record(state, call, None)
        answer = interrupt(approval_request(calls, by_name), response_schema=ApprovalAnswer.asking(calls))
        decided: dict[str, Approval] = {}
        for call, decision in zip(calls, answer.decisions(), strict=True):
            approval = as_approval(call, decision)
            decided[call_id(call)] = approval
            if record:
                record(state, call, approval)
            get_stream_writer()({"event": "approval_decided", "tool_call_id": call["id"], **approval})
        return {"approvals": decided}

    def approval(state: dict[str, Any]) -> dict[str, Any]:
        return decide(state, own)

    async def approval_with_found(state: dict[str, Any]) -> dict[str, Any]:
        return decide(state, await with_found(own, found))

    return approval if found is None else approval_with_found


AnswerT = TypeVar("AnswerT", bound=HITLResponse | ApprovalDecision | PlanDecision)


class Answer(RootModel[AnswerT], Generic[AnswerT]):
    """A resume value, checked against the actions asked about (count, names) by pydantic, inside ``interrupt()``,
    so a bad answer is refused before LangGraph records it and the interrupt stays open to be answered again."""

    actions: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _fits(self) -> Self:
        self.decisions()
        return self

    def decisions(self) -> list[Decision]:
        return decisions_for(self.root, self.actions)

    @classmethod
    def asking(cls, actions: Sequence[ToolCall | ActionRequest]) -> type[Self]:
        return type(cls.__name__, (cls,), {"actions": tuple(action["name"] for action in actions)})


class ApprovalAnswer(Answer[HITLResponse | ApprovalDecision]):
    """What resumes an approval: the standard ``{"decisions": [...]}``, or Loom's earlier ``{"decision": ...}``."""


class PlanAnswer(Answer[HITLResponse | PlanDecision]):
    """What resumes a plan approval: ``{"decisions": [...]}`` per step, or Loom's earlier ``{"decision": ...}``."""


Decision = ApproveDecision | EditDecision | RejectDecision


def review_request(actions: Sequence[ActionRequest], tools: Mapping[str, BaseTool]) -> dict[str, Any]:
    """LangChain's ``HITLRequest`` for ``actions``: every decision allowed, the edit schema from the tool."""
    configs = [
        ReviewConfig(action_name=name, allowed_decisions=list(ALL_DECISIONS), args_schema=args_schema(tools[name]))
        for name in dict.fromkeys(action["name"] for action in actions)
    ]
    return {"action_requests": list(actions), "review_configs": configs}


def approval_request(calls: Sequence[ToolCall], tools: Mapping[str, BaseTool]) -> dict[str, Any]:
    """What the approver sees: the standard request, plus Loom's tool call ids and permission levels."""
    actions = [ActionRequest(name=c["name"], args=c["args"], description=tools[c["name"]].description) for c in calls]
    return {
        **review_request(actions, tools),
        "type": "approval",
        "tool_calls": [
            {"tool_call_id": c["id"], "name": c["name"], "permission": permission_of(tools[c["name"]])} for c in calls
        ],
    }


def decisions_for(answer: HITLResponse | ApprovalDecision | PlanDecision, actions: Sequence[str]) -> list[Decision]:
    """One standard decision per action, in order; an edit may change the arguments, never the action."""
    if isinstance(answer, HITLResponse):
        decisions: list[Decision] = list(answer.decisions)
    elif answer.decision == "edit":
        args = answer.args if isinstance(answer, ApprovalDecision) and answer.args is not None else {}
        decisions = [EditDecision(type="edit", edited_action=Action(name=actions[0], args=args))]
    elif answer.decision == "reject":
        decisions = [RejectDecision(type="reject", message=answer.reason or "")]
    else:
        decisions = [ApproveDecision(type="approve")]
    if len(decisions) != len(actions):
        raise ValueError(f"decisions: {len(actions)} action(s) await a decision, {len(decisions)} were given")
    for index, (decision, action) in enumerate(zip(decisions, actions, strict=True)):
        if isinstance(decision, EditDecision) and decision.edited_action.name != action:
            raise ValueError(f"decisions.{index}.edited_action.name: must stay {action!r}")
    return decisions


def as_approval(call: ToolCall, decision: Decision) -> Approval:
    if isinstance(decision, EditDecision):
        return Approval(tool=call["name"], decision="edit", args=decision.edited_action.args, reason="")
    if isinstance(decision, RejectDecision):
        return Approval(tool=call["name"], decision="reject", args=call["args"], reason=decision.message)
    return Approval(tool=call["name"], decision="approve", args=call["args"], reason="")


def signature(tool: BaseTool) -> str:
    """``name(arg: type, optional?: type)`` from the schema the model was given."""
    schema = args_schema(tool)
    required = set(schema.get("required", []))
    parts = [
        f"{name}{'' if name in required else '?'}: {_type_of(spec)}"
        for name, spec in schema.get("properties", {}).items()
    ]
    return f"{tool.name}({', '.join(parts)})"


def _type_of(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return " | ".join(json.dumps(v) for v in spec["enum"])
    if "anyOf" in spec:
        return " | ".join(_type_of(s) for s in spec["anyOf"])
    return str(spec.get("type", "any"))


def invalid(call: ToolCall, text: str) -> ToolMessage:
    return ToolMessage(
        text, name=call["name"], tool_call_id=call["id"], status="error", response_metadata={INVALID_CALL: True}
    )


def check_call(call: ToolCall, tool: BaseTool | None, valid: Sequence[BaseTool]) -> ToolMessage | None:
    """An error naming what is valid, or None when ``call`` names a tool it may use with valid arguments."""
    if tool is None or tool.name not in {t.name for t in valid}:
        listing = "; ".join(signature(t) for t in valid)
        return invalid(call, f"Unknown tool {call['name']!r}. Valid tools: {listing}")
    try:
        model = tool.tool_call_schema
        if isinstance(model, type) and issubclass(model, BaseModel):
            model.model_validate(call["args"])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in exc.errors())
        return invalid(call, f"Invalid arguments for {tool.name}: {problems}. Expected {signature(tool)}")
    return None


Execute = Callable[[ToolCallRequest], ToolMessage | Command[Any]]
AsyncExecute = Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]]


def screen(request: ToolCallRequest, tools: Sequence[BaseTool], allowed: AllowedTools) -> ToolMessage | ToolCallRequest:
    """The gate's verdict on one call: an answer that stops it, or the request to run (edited if a human edited it)."""
    call, state = request.tool_call, request.state
    valid = [t for t in tools if t.name in allowed(state)]
    if error := check_call(call, request.tool, valid):
        return error
    tool = request.tool
    assert tool is not None  # check_call answered unknown tools
    if needs_approval(tool):
        approval = (state.get("approvals") or {}).get(call_id(call))
        if approval is None or approval["decision"] == "reject":
            why = (approval["reason"] or "no reason given") if approval else "no approval was recorded"
            text = f"REJECTED by the human approver: {why}. Do not retry {call['name']}; tell the customer."
            return ToolMessage(text, name=call["name"], tool_call_id=call["id"], status="error")
        if approval["decision"] == "edit":
            edited = ToolCall(name=call["name"], args=approval["args"], id=call["id"], type="tool_call")
            return check_call(edited, tool, valid) or request.override(tool_call=edited)
        return request
    context = request.runtime.context or RunContext()
    if not is_granted(tool, context):
        granted = ", ".join(context.permissions)
        text = f"PERMISSION DENIED: {tool.name} needs the {permission_of(tool)} permission; this run has: {granted}."
        return ToolMessage(text, name=tool.name, tool_call_id=call["id"], status="error")
    return request


def _noted(
    result: ToolMessage | Command[Any], original: ToolCallRequest, ran: ToolCallRequest
) -> ToolMessage | Command[Any]:
    """Tell the agent when a human changed the arguments it asked for."""
    if ran is original or not isinstance(result, ToolMessage):
        return result
    text = result.content if isinstance(result.content, str) else json.dumps(result.content)
    result.content = f"The approver edited the arguments to {json.dumps(ran.tool_call['args'])}. {text}"
    return result


def make_tool_gate(
    tools: Sequence[BaseTool], allowed: AllowedTools, found: ToolSource | None = None
) -> tuple[Any, Any]:
    """ToolNode's ``(wrap_tool_call, awrap_tool_call)`` over ``tools``; ``allowed`` picks the current agent's subset.

    ``found`` tools (an MCP server's) are run by the async gate only, for any agent the ToolNode serves.
    """

    def gate(request: ToolCallRequest, execute: Execute) -> ToolMessage | Command[Any]:
        verdict = screen(request, tools, allowed)
        return verdict if isinstance(verdict, ToolMessage) else _noted(execute(verdict), request, verdict)

    async def agate(request: ToolCallRequest, execute: AsyncExecute) -> ToolMessage | Command[Any]:
        everything = await with_found(tools, found)
        extra = {t.name: t for t in everything[len(tools) :]}
        if request.tool is None and (tool := extra.get(request.tool_call["name"])):
            request = request.override(tool=tool)
        verdict = screen(request, everything, widened(allowed, list(extra.values())))
        return verdict if isinstance(verdict, ToolMessage) else _noted(await execute(verdict), request, verdict)

    return gate, agate
