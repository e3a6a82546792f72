"""The shapes of Loom's answers, each defined once: the routes build these typed dicts and return them as such.

A ``TypedDict`` costs nothing to build (it is a dict), mypy checks that a view builds it whole, and FastAPI takes
the route's return type for the OpenAPI document and serialises through it. The fuzzing test checks every answer
against the document. Timestamps are datetimes, answered in UTC with their offset on every engine
(``server.db.UtcDateTime``). Keys beyond a shape's are kept (``extra="allow"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from server.db import MultitaskStrategy, RunStatus, ThreadStatus

OPEN = ConfigDict(extra="allow")
"""Keys beyond a shape's are kept. (No ``use_attribute_docstrings``: FastAPI builds a route's response schema at
its first request, on the event loop, and reading the docstrings reads this file.)"""


@with_config(OPEN)
class Interrupt(TypedDict):
    id: str | None
    value: Any


@with_config(OPEN)
class Checkpoint(TypedDict, total=False):
    thread_id: str | None
    checkpoint_ns: str | None
    checkpoint_id: str | None
    checkpoint_map: dict[str, Any] | None


@with_config(OPEN)
class Task(TypedDict):
    id: str
    name: str
    path: list[Any]
    error: str | None
    interrupts: list[Interrupt]
    checkpoint: Checkpoint | None
    state: ThreadState | None
    result: Any


@with_config(OPEN)
class ThreadState(TypedDict):
    values: Any
    next: list[str]
    tasks: list[Task]
    checkpoint: Checkpoint | None
    parent_checkpoint: Checkpoint | None
    checkpoint_id: str | None
    parent_checkpoint_id: str | None
    metadata: Mapping[str, Any]
    created_at: str | None
    """When the checkpoint was written, as LangGraph records it."""
    interrupts: list[Interrupt]


@with_config(OPEN)
class Thread(TypedDict):
    thread_id: str
    created_at: datetime
    updated_at: datetime
    state_updated_at: str | datetime
    """When its latest checkpoint was written, as LangGraph records it (``updated_at`` before its first)."""
    metadata: dict[str, Any]
    config: dict[str, Any]
    status: ThreadStatus
    values: Any
    interrupts: dict[str, list[Interrupt]]
    error: dict[str, Any] | None


def selected(shape: Any, **extra: Any) -> Any:
    """``Selected<shape>``: ``shape``'s keys, each left out when ``select`` names others, then ``extra``."""
    fields = {**shape.__annotations__, **extra}
    chosen = TypedDict(f"Selected{shape.__name__}", fields, total=False)  # type: ignore[misc]
    chosen.__doc__ = "A search answer: every field unless ``select`` named some."
    return with_config(OPEN)(chosen)


SelectedThread = selected(Thread, extracted=dict[str, Any])


@with_config(OPEN)
class UsageTotals(TypedDict):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    model_calls: int
    cost_usd: float | None
    """USD by the price table; null when a model without a price was used."""


class Usage(UsageTotals):
    by_node: dict[str, UsageTotals]
    by_model: dict[str, UsageTotals]
    """Keyed ``provider:model`` as the provider named it (dated snapshots are priced as their model)."""
    unpriced_models: list[str]


class ThreadUsage(Usage):
    thread_id: str
    runs: int
    """Runs whose usage is recorded (it is written when a run ends)."""


@with_config(OPEN)
class Feedback(TypedDict):
    feedback_id: str
    run_id: str
    key: str
    score: bool | float
    comment: str | None
    created_at: datetime


@with_config(OPEN)
class Run(TypedDict):
    run_id: str
    thread_id: str | None
    assistant_id: str
    status: RunStatus
    metadata: dict[str, Any]
    kwargs: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    attempt: int
    error: dict[str, Any] | None
    usage: Usage | None
    created_at: datetime
    updated_at: datetime
    feedback: NotRequired[
        Annotated[list[Feedback], Field(description="The run's feedback, oldest first (on a single run's read).")]
    ]


@with_config(OPEN)
class AssistantVersion(TypedDict):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: datetime


class Assistant(AssistantVersion):
    updated_at: datetime


SelectedAssistant = selected(Assistant)


@with_config(OPEN)
class Item(TypedDict):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: str
    updated_at: str
    score: NotRequired[
        Annotated[float | None, Field(description="Similarity to a search's query (semantic search only).")]
    ]


class ItemList(TypedDict):
    items: list[Item]


class Namespaces(TypedDict):
    namespaces: list[list[str]]


class StateUpdated(TypedDict):
    checkpoint: Checkpoint
    configurable: Checkpoint
    """The same checkpoint, as langgraph-api also sends it (JS clients read ``configurable.checkpoint_id``)."""
    checkpoint_id: str


@with_config(OPEN)
class DatasetVersion(TypedDict):
    version: int
    example_count: int
    created_at: datetime


@with_config(OPEN)
class DatasetSummary(TypedDict):
    dataset_id: str
    name: str
    description: str | None
    version: int
    """The latest version (a dataset's read names the version it shows)."""
    example_count: int
    created_at: datetime
    updated_at: datetime


class Dataset(DatasetSummary):
    examples: list[dict[str, Any]]
    """As ``loom.datasets.Example`` validated them, defaults left out: the JSONL lines a user would write."""


class Ok(TypedDict):
    ok: bool
