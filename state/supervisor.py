"""State of the supervisor graph: a research–write–review team that always terminates (seed 003)."""

from __future__ import annotations

import operator
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from state.common import Messages, UsageLog, user_turn
from state.team import Instruction, Source, TeamBoard, Worker, WorkerReport, merge_reports

FinishReason = Literal["completed", "round_limit", "loop_detected"]
PassThrough = Literal["none", "researcher", "writer", "reviewer"]


class Decision(BaseModel):
    """One supervisor step. Flat, with closed choices, so grammar-constrained decoding always yields one.

    ``task`` is bounded so a small model cannot run past its token budget mid-string; ``final_output`` is
    not (llama.cpp's grammar for a long bound is too large), and an unfinished one falls back in code.
    """

    next: Literal["researcher", "writer", "reviewer", "finish"] = Field(
        description="The worker to delegate to, or finish when the work is done"
    )
    task: Instruction = Field(default="", description="Instructions for the worker; empty when finishing")
    pass_through: PassThrough = Field(
        default="none", description="When finishing: return this worker's latest output verbatim"
    )
    final_output: str = Field(default="", description="When finishing without pass_through: the answer")


class Delegation(TypedDict):
    """One round: who got what, decided how, and the team's progress fingerprint before it ran."""

    turn_id: str
    """The user message this round served; rounds of earlier turns never count as repeats."""
    round: int
    worker: Worker
    task: str
    decided_by: Literal["model", "fallback", "loop_guard"]
    progress_before: str


@user_turn
class SupervisorInput(TypedDict):
    messages: Messages


class SupervisorOutput(TypedDict):
    messages: Messages
    final_output: NotRequired[str]
    final_from: NotRequired[str]
    """Who wrote ``final_output``: a worker (passed through verbatim) or "supervisor"."""
    finish_reason: NotRequired[FinishReason]
    loop_events: NotRequired[Annotated[list[str], operator.add]]
    sources: NotRequired[list[Source]]
    reports: NotRequired[Annotated[list[WorkerReport], merge_reports]]


class SupervisorState(SupervisorInput, TeamBoard):
    delegations: NotRequired[Annotated[list[Delegation], operator.add]]
    rounds: NotRequired[int]
    loop_strikes: NotRequired[int]
    loop_events: NotRequired[Annotated[list[str], operator.add]]
    final_output: NotRequired[str]
    final_from: NotRequired[str]
    finish_reason: NotRequired[FinishReason]
    sources: NotRequired[list[Source]]
    unresolved_citations: NotRequired[list[str]]
    usage: NotRequired[UsageLog]
