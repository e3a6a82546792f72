"""State of the plan-and-execute graph (seeds 001, 003, 004): a typed plan, its step results and failures.

A plan step's ``arguments`` may hold references to earlier results: ``{"$ref": "step_1"}`` is step_1's
whole result, ``{"$ref": "step_1.item_ids"}`` one field of it (dotted path; list indexes are numbers,
e.g. ``step_1.items.0.name``). A referenced step counts as a dependency even if ``depends_on`` omits it.
``{"ref": …}`` is accepted as the same thing: llama.cpp's JSON-schema grammar reserves the ``$ref`` key, so
the schema for constrained decoding offers ``ref``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from state.common import Artifacts, Messages, UsageLog, user_turn


class PlanStep(BaseModel):
    """One step: a tool call, or (``tool`` null) a reasoning step that may use the run's read tools."""

    id: str = Field(min_length=1, max_length=32, description='Short unique id, e.g. "step_1"')
    description: str = Field(max_length=500, description="What this step does, in one sentence")
    tool: str | None = Field(default=None, description="Tool to call; null for a reasoning step")
    arguments: dict[str, Any] = Field(default_factory=dict, description='Tool arguments; {"$ref": "step_1.field"}')
    depends_on: list[str] = Field(default_factory=list, description="Ids of steps whose results this step needs")


class Plan(BaseModel):
    steps: list[PlanStep]


class PlanDecision(BaseModel):
    """A human's answer to a plan approval request; the resume value of the ``interrupt``."""

    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=1000)


class StepSpec(TypedDict):
    """A ``PlanStep`` as stored in the checkpoint."""

    id: str
    description: str
    tool: str | None
    arguments: dict[str, Any]
    depends_on: list[str]


class StepResult(TypedDict):
    step: str
    tool: str | None
    output: Any
    attempts: int


class StepFailure(TypedDict):
    step: str
    tool: str | None
    arguments: dict[str, Any]
    error: str
    attempts: int
    generation: int
    """Which plan generation failed; a replan starts the next one."""


class FailureReport(TypedDict):
    """Why the run stopped without an answer, and what it had achieved by then."""

    status: Literal["step_failed", "invalid_plan", "rejected"]
    reason: str
    failed_step: str | None
    error: str
    partial_results: dict[str, Any]
    not_run: list[str]


def merge_results(left: dict[str, StepResult] | None, right: dict[str, StepResult] | None) -> dict[str, StepResult]:
    """Parallel steps add their results side by side; ``None`` starts a new turn's results."""
    return {} if right is None else {**(left or {}), **right}


def add_failures(left: list[StepFailure] | None, right: list[StepFailure] | None) -> list[StepFailure]:
    return [] if right is None else [*(left or []), *right]


class ReplanRequest(TypedDict):
    """The failed part of a plan the planner must replace; completed steps stay as they are."""

    failed: list[StepFailure]
    blocked: list[StepSpec]


class StepTask(TypedDict):
    """What ``Send`` hands one step run: the step and its arguments with references resolved."""

    step: StepSpec
    inputs: dict[str, Any]
    """Outputs of the steps it references, by step id."""
    request: str
    approved: bool
    generation: int


@user_turn
class PlanExecuteInput(TypedDict):
    """What a caller sends: the request as a new message."""

    messages: Messages


class PlanExecuteOutput(TypedDict):
    messages: Messages
    plan: NotRequired[list[StepSpec]]
    results: NotRequired[Annotated[dict[str, StepResult], merge_results]]
    report: NotRequired[FailureReport | None]


class PlanExecuteState(PlanExecuteInput):
    request: NotRequired[str]
    """The user request this turn's plan serves."""
    plan: NotRequired[list[StepSpec]]
    plan_source: NotRequired[Literal["rules", "llm"]]
    plan_attempts: NotRequired[int]
    """Planner calls in the current planning round (initial plan or one replan)."""
    plan_error: NotRequired[str]
    """Why the planner's last reply was not a plan at all (unparseable)."""
    feedback: NotRequired[list[str]]
    """Validation errors of the last plan, shown to the planner."""
    replan: NotRequired[ReplanRequest | None]
    permission_warned: NotRequired[bool]
    approved_steps: NotRequired[list[str]]
    generation: NotRequired[int]
    results: NotRequired[Annotated[dict[str, StepResult], merge_results]]
    failures: NotRequired[Annotated[list[StepFailure], add_failures]]
    replans: NotRequired[int]
    report: NotRequired[FailureReport | None]
    usage: NotRequired[UsageLog]
    lessons: NotRequired[list[str]]
    """Lessons of similar past runs (``nodes.plan_execute.episodes``), in the planner's prompt this turn."""


class ReasonerState(TypedDict):
    """The ReAct subgraph of a reasoning step."""

    messages: Messages
    usage: NotRequired[UsageLog]
    artifacts: NotRequired[Artifacts]
