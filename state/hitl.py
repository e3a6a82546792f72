"""LangChain's standard human-in-the-loop shapes, as ``HumanInTheLoopMiddleware`` uses them.

An approval interrupt carries ``action_requests`` and ``review_configs`` (LangChain's ``HITLRequest``),
and is answered with ``{"decisions": [...]}`` (``HITLResponse``), one decision per action request, in
order. UIs written for LangChain agents (Agent Chat UI, Agent Inbox) recognise and answer exactly this,
so Loom's approvals use it; Loom's own fields ride along beside these keys.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, Field

DecisionType = Literal["approve", "edit", "reject"]
ALL_DECISIONS: list[DecisionType] = ["approve", "edit", "reject"]


class ActionRequest(TypedDict):
    """One action a human is asked about: a tool and the arguments it would run with."""

    name: str
    args: dict[str, Any]
    description: NotRequired[str]


class ReviewConfig(TypedDict):
    """What a human may answer for an action name; ``args_schema`` tells an editor what the arguments are."""

    action_name: str
    allowed_decisions: list[DecisionType]
    args_schema: NotRequired[dict[str, Any]]


class Action(BaseModel):
    name: str = Field(max_length=200)
    args: dict[str, Any]


class ApproveDecision(BaseModel):
    type: Literal["approve"]


class EditDecision(BaseModel):
    type: Literal["edit"]
    edited_action: Action


class RejectDecision(BaseModel):
    type: Literal["reject"]
    message: str = Field(default="", max_length=1000, description="Why (the agent sees it)")


Decision = Annotated[ApproveDecision | EditDecision | RejectDecision, Field(discriminator="type")]


class HITLResponse(BaseModel):
    """A human's answer to a ``HITLRequest``: one decision per action request, in the same order."""

    decisions: list[Decision] = Field(min_length=1, max_length=100)
