"""State of the customer-support graph (seed 002): one thread per support request.

The request record (category, priority, status, current agent, escalation, resolution) lives
here, checkpointed with the conversation, and is mirrored into the ``support_requests`` table
that the API and analytics read.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired, get_args

from pydantic import BaseModel, Field, model_validator
from typing_extensions import TypedDict

from state.common import Messages, RecalledMemory, UsageLog, user_turn

Category = Literal["technical", "billing", "general", "escalation"]
Priority = Literal["low", "medium", "high", "critical"]
Status = Literal["new", "in_progress", "escalated", "resolved"]
Agent = Literal["technical", "billing", "general", "escalation"]
"""Agent names are also the graph's node names."""

CATEGORIES: tuple[Category, ...] = get_args(Category)
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
STATUSES: tuple[Status, ...] = get_args(Status)
AGENTS: tuple[Agent, ...] = get_args(Agent)


class TriageDecision(BaseModel):
    """What triage decides; also the schema the model's output is constrained to."""

    category: Category
    priority: Priority
    reasoning: str = Field(description="One short sentence", max_length=300)
    suggested_agent: Agent


class Triage(TypedDict):
    category: Category
    priority: Priority
    reasoning: str
    suggested_agent: Agent
    stage: Literal["keywords", "llm", "fallback"]
    """Which stage decided: the keyword scorer, the constrained model, or the general/medium fallback."""


class Turn(TypedDict):
    timestamp: str
    agent: Agent
    user_message: str
    agent_response: str


class SupportRequest(TypedDict):
    request_id: str
    user_id: str
    initial_message: str
    category: Category | None
    priority: Priority
    status: Status
    current_agent: Agent | None
    escalation_reason: str | None
    resolution_summary: str | None
    created_at: str
    updated_at: str


class ApprovalDecision(BaseModel):
    """A human's answer to an approval request; the resume value of the ``interrupt``."""

    decision: Literal["approve", "edit", "reject"]
    args: dict[str, Any] | None = Field(default=None, description="Replacement arguments, for 'edit'")
    reason: str | None = Field(default=None, max_length=1000, description="Why, for 'reject' (the agent sees it)")

    @model_validator(mode="after")
    def _complete(self) -> ApprovalDecision:
        if self.decision == "edit" and self.args is None:
            raise ValueError("an 'edit' decision needs the edited 'args'")
        if self.decision == "reject" and not (self.reason or "").strip():
            raise ValueError("a 'reject' decision needs a 'reason' for the agent")
        return self


class Approval(TypedDict):
    """A decided approval, by tool call id; the tool gate reads it when the call runs."""

    tool: str
    decision: Literal["approve", "edit", "reject"]
    args: dict[str, Any]
    reason: str


class Resolution(TypedDict):
    """How a request was resolved through ``/support``; the ``resolve`` node writes it into ``request``."""

    summary: str
    resolved_at: str


@user_turn
class SupportInput(TypedDict):
    """What a caller sends: the customer's next message."""

    messages: Messages


class SupportOutput(TypedDict):
    messages: Messages
    request: NotRequired[SupportRequest]
    triage: NotRequired[Triage]
    turns: NotRequired[Annotated[list[Turn], operator.add]]


class SupportState(SupportInput):
    request: NotRequired[SupportRequest]
    triage: NotRequired[Triage]
    turns: NotRequired[Annotated[list[Turn], operator.add]]
    approvals: NotRequired[Annotated[dict[str, Approval], operator.or_]]
    resolution: NotRequired[Resolution]
    usage: NotRequired[UsageLog]
    memories: NotRequired[list[RecalledMemory]]
    """Long-term memories recalled for this run (``nodes.common.memory``), in the specialists' prompts."""
