"""The shapes of Loom's main answers, for the OpenAPI document (``server/openapi.py`` attaches them).

Routes build plain dicts in langgraph-api's shapes; these models only describe them, so the fuzzing
test can check every answer against the document. Timestamps are strings, in UTC with their offset on
every engine (``server.db.UtcDateTime``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model


class Interrupt(BaseModel):
    id: str | None
    value: Any


class Checkpoint(BaseModel):
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class Task(BaseModel):
    id: str
    name: str
    path: list[Any]
    error: str | None
    interrupts: list[Interrupt]
    checkpoint: Checkpoint | None
    state: ThreadState | None
    result: Any


class ThreadState(BaseModel):
    values: Any
    next: list[str]
    tasks: list[Task]
    checkpoint: Checkpoint | None
    parent_checkpoint: Checkpoint | None
    metadata: dict[str, Any]
    created_at: str | None
    interrupts: list[Interrupt]
    checkpoint_id: str | None
    parent_checkpoint_id: str | None


class Thread(BaseModel):
    thread_id: str
    created_at: str
    updated_at: str
    state_updated_at: str
    metadata: dict[str, Any]
    config: dict[str, Any]
    status: Literal["idle", "busy", "interrupted", "error"]
    values: Any
    interrupts: dict[str, list[Interrupt]]
    error: dict[str, Any] | None


def selected(model: type[BaseModel], **extra: Any) -> type[BaseModel]:
    """``Selected<model>``: ``model``'s fields, each optional (``select`` may leave it out), then ``extra``."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation: Any = field.annotation
        fields[name] = (annotation if annotation is Any else annotation | None, None)
    doc = "A search answer: every field unless ``select`` named some."
    return create_model(f"Selected{model.__name__}", __doc__=doc, **fields, **extra)


SelectedThread = selected(Thread, extracted=(dict[str, Any] | None, None))


class UsageTotals(BaseModel):
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


class Run(BaseModel):
    run_id: str
    thread_id: str | None
    assistant_id: str
    status: Literal["pending", "running", "success", "error", "timeout", "interrupted", "cancelled"]
    metadata: dict[str, Any]
    kwargs: dict[str, Any]
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"]
    attempt: int
    error: dict[str, Any] | None
    usage: Usage | None
    created_at: str
    updated_at: str


class AssistantVersion(BaseModel):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: str


class Assistant(AssistantVersion):
    updated_at: str


SelectedAssistant = selected(Assistant)


class Item(BaseModel):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: str
    updated_at: str
    score: float | None = Field(default=None, description="Similarity to a search's query (semantic search only).")


class ItemList(BaseModel):
    items: list[Item]


class Namespaces(BaseModel):
    namespaces: list[list[str]]


class StateUpdated(BaseModel):
    checkpoint: Checkpoint
    configurable: Checkpoint
    """The same checkpoint, as langgraph-api also sends it (JS clients read ``configurable.checkpoint_id``)."""
    checkpoint_id: str


class Ok(BaseModel):
    ok: bool


ONE = "one"
MANY = "many"
ONE_OR_NULL = "one or null"
DOCUMENTED: dict[tuple[str, str], tuple[type[BaseModel], str]] = {
    ("get", "/ok"): (Ok, ONE),
    ("post", "/assistants"): (Assistant, ONE),
    ("post", "/assistants/search"): (SelectedAssistant, MANY),
    ("get", "/assistants/{assistant_id}"): (Assistant, ONE),
    ("patch", "/assistants/{assistant_id}"): (Assistant, ONE),
    ("post", "/assistants/{assistant_id}/latest"): (Assistant, ONE),
    ("post", "/assistants/{assistant_id}/versions"): (AssistantVersion, MANY),
    ("post", "/threads"): (Thread, ONE),
    ("post", "/threads/search"): (SelectedThread, MANY),
    ("get", "/threads/{thread_id}"): (Thread, ONE),
    ("patch", "/threads/{thread_id}"): (Thread, ONE),
    ("post", "/threads/{thread_id}/copy"): (Thread, ONE),
    ("get", "/threads/{thread_id}/state"): (ThreadState, ONE),
    ("get", "/threads/{thread_id}/state/{checkpoint_id}"): (ThreadState, ONE),
    ("post", "/threads/{thread_id}/state/checkpoint"): (ThreadState, ONE),
    ("post", "/threads/{thread_id}/state"): (StateUpdated, ONE),
    ("post", "/threads/{thread_id}/history"): (ThreadState, MANY),
    ("get", "/threads/{thread_id}/history"): (ThreadState, MANY),
    ("post", "/threads/{thread_id}/runs"): (Run, ONE),
    ("post", "/runs"): (Run, ONE),
    ("post", "/runs/batch"): (Run, MANY),
    ("get", "/threads/{thread_id}/runs"): (Run, MANY),
    ("get", "/threads/{thread_id}/runs/{run_id}"): (Run, ONE),
    ("get", "/threads/{thread_id}/usage"): (ThreadUsage, ONE),
    ("get", "/store/items"): (Item, ONE_OR_NULL),  # null for a missing item, as langgraph-api
    ("post", "/store/items/search"): (ItemList, ONE),
    ("post", "/store/namespaces"): (Namespaces, ONE),
}
"""(method, path) → the model of its 200 answer: one object, a list of them, or one object or null."""
