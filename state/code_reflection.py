"""State of the code-reflection loop: generate → run in the sandbox → fix, driven by real execution (seed 001)."""

from __future__ import annotations

import operator
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from state.common import Messages, UsageLog, user_turn
from state.team import Sentence

CodeFinish = Literal["passed", "attempt_limit"]


class CodeDraft(BaseModel):
    """The first generation: the solution and, unless the caller gave tests, tests for it."""

    code: str = Field(description="A complete Python module that solves the task")
    tests: str = Field(
        default="", description="test_* functions using assert; the solution's names are already imported"
    )


class CodeFix(BaseModel):
    diagnosis: Sentence = Field(default="", description="What the error output shows is wrong, in one sentence")
    code: str = Field(description="The complete corrected module")


class CodeAttempt(TypedDict):
    """One sandbox run of one version of the code against the (frozen) tests."""

    turn_id: str
    attempt: int
    code: str
    ok: bool
    tests_passed: int
    tests_failed: int
    exit_code: int | None
    killed_reason: str | None
    output: str
    """Stdout and stderr tails: what the next fix is told."""


@user_turn
class CodeInput(TypedDict):
    messages: Messages
    tests: NotRequired[str]
    """Caller-written tests for this turn; when given, the model's own tests are not used."""


class CodeOutput(TypedDict):
    messages: Messages
    code: NotRequired[str]
    test_code: NotRequired[str]
    finish_reason: NotRequired[CodeFinish]
    finish_detail: NotRequired[str]
    attempts: NotRequired[Annotated[list[CodeAttempt], operator.add]]


class CodeState(CodeInput):
    turn_id: NotRequired[str]
    task: NotRequired[str]
    code: NotRequired[str]
    test_code: NotRequired[str]
    """The tests every version of this turn's code must pass; frozen after the first generation."""
    attempts: NotRequired[Annotated[list[CodeAttempt], operator.add]]
    finish_reason: NotRequired[CodeFinish]
    finish_detail: NotRequired[str]
    usage: NotRequired[UsageLog]
