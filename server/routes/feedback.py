"""Feedback on runs: a user's thumbs-up or down, a judge's score, each a key, a score and a comment (issue 25)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from server.auth import CurrentCaller
from server.data import feedback
from server.deps import Loom, caller_run
from server.engine.wire import feedback_view
from server.responses import Feedback
from server.schemas import Strict

router = APIRouter(tags=["feedback"])


def _score(value: Any) -> Any:
    """A bool, or a finite number: never a string that looks like one."""
    if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
        return value
    raise PydanticCustomError("score", "must be a number or a boolean")


class FeedbackCreate(Strict):
    key: str = Field(min_length=1, max_length=256, description="What is scored: `thumbs`, `correctness`, …")
    score: Annotated[bool | float, BeforeValidator(_score)]
    comment: str | None = Field(default=None, max_length=10_000)


@router.post("/runs/{run_id}/feedback")
async def create(run_id: str, body: FeedbackCreate, loom: Loom, caller: CurrentCaller) -> Feedback:
    """Stores a score on one of the caller's runs: ``key`` (what is scored), ``score`` (a number or a bool) and an
    optional ``comment``; a run has any number of them. Answers the stored feedback; 404 for a run the caller
    cannot see, 422 naming the field for a bad body."""
    run = await caller_run(loom, run_id, caller, "update")
    row = await feedback.add(loom.sessions, run.run_id, caller.identity, body.key, body.score, body.comment)
    return feedback_view(row)


@router.get("/runs/{run_id}/feedback")
async def list_feedback(run_id: str, loom: Loom, caller: CurrentCaller) -> list[Feedback]:
    """The run's feedback, oldest first (also under ``feedback`` on ``GET /threads/{thread_id}/runs/{run_id}``);
    404 for a run the caller cannot see."""
    return [feedback_view(row) for row in (await caller_run(loom, run_id, caller, "read")).feedback]
