"""What the research–write–review workers share: sources, reports and the board they read.

The supervisor and the pipeline graphs both run the same worker subgraphs, so the records they
exchange live here. Workers read a narrow board (goal, instruction, earlier reports, feedback)
and return only their report, never their internal tool-calling conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, NotRequired, get_args

from pydantic import BeforeValidator, Field
from typing_extensions import TypedDict

from state.common import Artifacts, Messages, UsageLog

Worker = Literal["researcher", "writer", "reviewer"]
WORKERS: tuple[Worker, ...] = get_args(Worker)


def _truncate(limit: int) -> Callable[[Any], Any]:
    return lambda value: value[:limit] if isinstance(value, str) else value


Sentence = Annotated[str, Field(max_length=120), BeforeValidator(_truncate(120))]
"""Free text in a model's structured answer: the schema's bound makes constrained decoding stop in time
(a small model would otherwise run past its token budget mid-string), and validation truncates rather
than rejects, so a provider that ignores the bound never loses a whole verdict to length."""
Instruction = Annotated[str, Field(max_length=300), BeforeValidator(_truncate(300))]


class Source(TypedDict):
    """One retrieved passage, citable as ``cite`` (``[file#passage]`` or ``[web:<url hash>]``)."""

    cite: str
    origin: Literal["knowledge_base", "web"]
    file: str
    """Path inside the knowledge folder, or the page URL for web results."""
    passage: int
    heading: str
    text: str
    score: float


class WorkerReport(TypedDict):
    """A worker's final answer to one assignment, with the passages it retrieved on the way."""

    id: str
    worker: Worker
    instruction: str
    output: str
    sources: list[Source]


def merge_reports(left: list[WorkerReport], right: list[WorkerReport]) -> list[WorkerReport]:
    """Append reports not seen yet: a worker subgraph returns the whole list it was given plus its own."""
    seen = {report["id"] for report in left}
    return left + [report for report in right if report["id"] not in seen]


class WorkerInput(TypedDict):
    """The board a worker reads; the parent graph's other keys never reach it."""

    goal: str
    instruction: NotRequired[str]
    feedback: NotRequired[str]
    """The latest review's findings, for a writer asked to revise."""
    reports: Annotated[list[WorkerReport], merge_reports]


class TeamBoard(TypedDict):
    """What a graph running the workers (the supervisor, the pipeline) keeps for them: the turn, the board
    they read and the reports they return."""

    turn_id: NotRequired[str]
    goal: NotRequired[str]
    instruction: NotRequired[str]
    feedback: NotRequired[str]
    reports: NotRequired[Annotated[list[WorkerReport], merge_reports]]


class WorkerOutput(TypedDict):
    reports: Annotated[list[WorkerReport], merge_reports]
    usage: UsageLog


class WorkerState(WorkerInput):
    messages: Messages
    usage: UsageLog
    artifacts: NotRequired[Artifacts]
