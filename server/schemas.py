"""Request bodies, in langgraph-api's shapes. Unknown fields are refused (422 naming them), never dropped."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator, model_validator
from pydantic_core import PydanticCustomError

from loom.settings import Budget
from server.db import MultitaskStrategy

StreamMode = Literal[
    "values", "updates", "messages", "messages-tuple", "custom", "debug", "tasks", "checkpoints", "events"
]
Permission = Literal["read", "write", "destructive"]
MAX_OFFSET = 1_000_000_000
"""Offsets past this are refused: SQL engines overflow on larger integers."""


def json_integer(value: Any) -> Any:
    """As JSON Schema's ``integer``: 5 and 5.0, not true or "5" (pydantic's lax mode would take both)."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


JsonInt = Annotated[int, BeforeValidator(json_integer)]


# bounds before the validator, so the OpenAPI document shows them
RecursionLimit = Annotated[int, Field(ge=1, le=10_000), BeforeValidator(json_integer)]
MaxConcurrency = Annotated[int, Field(ge=1, le=1_000), BeforeValidator(json_integer)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandBody(Strict):
    resume: Any = None
    update: dict[str, Any] | list[Any] | None = None
    goto: str | list[str] | None = None


class CheckpointRef(Strict):
    thread_id: str | None = None
    checkpoint_ns: str = ""
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class RunConfig(BaseModel):
    """A run's ``config``: the keys LangGraph reads are typed, so a bad value is a 422 before the run starts."""

    model_config = ConfigDict(extra="allow")

    recursion_limit: RecursionLimit | None = None
    max_concurrency: MaxConcurrency | None = None
    configurable: dict[str, Any] | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    run_name: str | None = None

    @field_validator("configurable")
    @classmethod
    def no_internal_keys(cls, configurable: dict[str, Any] | None) -> dict[str, Any] | None:
        """LangGraph keeps its own machinery (checkpointer, scratchpad, durability) under ``__pregel_`` keys."""
        internal = sorted(key for key in configurable or {} if key.startswith("__pregel_"))
        if internal:
            raise ValueError(f"{', '.join(internal)}: reserved for LangGraph's own use")
        return configurable


class RunContextBody(BaseModel):
    """The ``context`` of a run of Loom's own graphs: ``permissions`` may only narrow what the server grants.

    Graphs with their own context schema validate ``context`` against it instead (``server.engine.context``)."""

    model_config = ConfigDict(extra="allow")

    user_name: str | None = Field(default=None, max_length=200)
    permissions: list[Permission] | None = None
    budget: Budget | None = None


class BudgetContext(BaseModel):
    """``context.budget``, which Loom reads for every graph and keeps out of a served graph's own context."""

    budget: Budget | None = None


def stream_mode_problem(value: Any) -> str | None:
    """What is wrong with a ``stream_mode`` (a mode or a list of them), naming the element and the modes there are;
    None when nothing is."""
    modes = [value] if isinstance(value, str) else value
    if not isinstance(modes, list):
        return "must be a stream mode or a list of them"
    allowed = get_args(StreamMode)
    for index, mode in enumerate(modes):
        if mode not in allowed:
            where = "" if isinstance(value, str) else f" (item {index})"
            return f"{mode!r}{where} is no stream mode; the modes are {', '.join(allowed)}"
    return None


class RunCreate(Strict):
    assistant_id: str
    input: dict[str, Any] | None = None
    command: CommandBody | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = Field(
        default=None,
        description="The graph's context; Loom also reads `budget`: {max_usd, max_tokens, max_model_calls}, limits "
        "that stop the run at its next node with the error `budget_exceeded`.",
    )
    metadata: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    checkpoint: CheckpointRef | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    stream_subgraphs: StrictBool = False
    stream_resumable: StrictBool = Field(default=False, description="Accepted; every Loom stream is resumable.")
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: StrictBool | None = None

    @field_validator("stream_mode", mode="before")
    @classmethod
    def known_modes(cls, value: Any) -> Any:
        """A typo is named with the modes there are (pydantic's own message would name its union's members)."""
        if (problem := stream_mode_problem(value)) is not None:
            raise PydanticCustomError("stream_mode", problem)
        return value

    @model_validator(mode="after")
    def input_or_command(self) -> RunCreate:
        if self.input is not None and self.command is not None:
            if self.input:
                raise ValueError("send either input or command, not both")
            self.input = None  # useStream's submit({}, {command}), how Agent Chat UI answers an interrupt
        return self

    def stream_modes(self) -> list[str]:
        return [self.stream_mode] if isinstance(self.stream_mode, str) else list(self.stream_mode)

    def resolved_checkpoint_id(self) -> str | None:
        return self.checkpoint_id or (self.checkpoint.checkpoint_id if self.checkpoint else None)


class ThreadCreate(Strict):
    thread_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    graph_id: str | None = None
    supersteps: list[Any] | None = None


class ThreadPatch(Strict):
    metadata: dict[str, Any] = Field(default_factory=dict)


ThreadField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
    "error",
]


ExtractAlias = Annotated[str, Field(pattern=r"^[A-Za-z_]\w{0,63}$")]
ExtractPath = Annotated[str, Field(max_length=256, pattern=r"^(values|metadata|config|interrupts)([.\[].*)?$")]
"""``values.messages[-1].content``: a thread field, then keys, attributes and list indexes."""


class ThreadCount(Strict):
    metadata: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class ThreadSearch(ThreadCount):
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[ThreadField] | None = None
    extract: dict[ExtractAlias, ExtractPath] | None = Field(default=None, max_length=10)


class StateUpdate(Strict):
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint_id: str | None = None
    checkpoint: CheckpointRef | None = None


class HistoryQuery(Strict):
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    before: str | CheckpointRef | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None

    def before_id(self) -> str | None:
        return self.before if isinstance(self.before, str) or self.before is None else self.before.checkpoint_id


class TaskCreate(Strict):
    task_description: str = Field(min_length=1, max_length=10_000)
    graph_id: str = "plan_execute"
