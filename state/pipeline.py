"""State of the research → write → review → (revise → review)* → publish pipeline (seeds 001, 003)."""

from __future__ import annotations

import operator
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from state.common import Messages, UsageLog, user_turn
from state.team import Sentence, Source, TeamBoard

PipelineFinish = Literal["approved", "revision_limit"]


class ArticleJudgement(BaseModel):
    """The judge's half of the rubric: yes/no criteria, which judges apply more reliably than scales (seed 001)."""

    answers_goal: bool = Field(description="The article directly does what the goal asks")
    claims_supported: bool = Field(description="Its factual claims match the passages they cite")
    clear_structure: bool = Field(description="It has a title, an introduction, a body and a conclusion")
    specific: bool = Field(description="It gives concrete examples or mechanisms, not only generalities")
    explanation: Sentence = Field(default="", description="What to fix, in one sentence")


class Review(TypedDict):
    """One rubric verdict on one draft; ``score`` is the share of criteria passed."""

    turn_id: str
    draft_id: str
    revision: int
    """0 for the first draft, then 1, 2… for each revision."""
    criteria: dict[str, bool]
    score: float
    feedback: str
    judged: bool
    """False when the judge gave no valid verdict (its criteria then count as failed)."""


@user_turn
class PipelineInput(TypedDict):
    messages: Messages


class PipelineOutput(TypedDict):
    messages: Messages
    article: NotRequired[str]
    sources: NotRequired[list[Source]]
    finish_reason: NotRequired[PipelineFinish]
    finish_detail: NotRequired[str]
    reviews: NotRequired[Annotated[list[Review], operator.add]]


class PipelineState(PipelineInput, TeamBoard):
    reviews: NotRequired[Annotated[list[Review], operator.add]]
    article: NotRequired[str]
    sources: NotRequired[list[Source]]
    unresolved_citations: NotRequired[list[str]]
    finish_reason: NotRequired[PipelineFinish]
    finish_detail: NotRequired[str]
    usage: NotRequired[UsageLog]
