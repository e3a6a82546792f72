"""A run request prepared: the body checked against its graph before admission stores it.

One step turns a ``RunCreate`` body, the caller and the assistant it names into a ``PreparedRun``: the
assistant's config and context merged underneath the run's own, the input checked against the graph's
input schema, breakpoints against its nodes, the context against its context schema (422 naming the
field). What depends on the thread's checkpoints (a resume needs a pending interrupt) is read by
``refusal`` just before admission, which decides whether it counts.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig

from server.data.assistants import AssistantRow, merged_run
from server.engine.context import configurable_as_context, validate_context
from server.errors import ApiError, not_found
from server.graph_schemas import input_jsonschema
from server.schemas import RunCreate
from state.common import USER_TURN


@dataclass(frozen=True)
class PreparedRun:
    """A run request checked against its graph, with its assistant's config and context merged in."""

    user: str
    """Who asks: the identity the server authenticated."""
    body: RunCreate
    """The request's body, the assistant's config and context underneath its own."""
    assistant: AssistantRow

    @property
    def graph_id(self) -> str:
        return self.assistant.graph_id

    def kwargs(self, ephemeral: bool, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The body as a run row stores it (and replays it on recovery); ``ephemeral``: a stateless run."""
        return stored_kwargs(self.body, ephemeral, exclude)


def prepare(
    user: str, body: RunCreate, assistant: AssistantRow, graphs: Mapping[str, Any], per_run: Container[str]
) -> PreparedRun:
    """``body`` checked against the graph of ``assistant`` (``graphs``); 422 naming the field if it does not fit.

    Args:
        user: the caller's identity.
        body: the request's run body.
        assistant: the assistant the body names, already found visible to ``user``.
        graphs: the served graphs by id.
        per_run: ids of graphs rebuilt for each run from its config, whose nodes are unknown until then
            (their breakpoints are not checked).

    Returns:
        The prepared run, frozen.
    """
    graph = graphs[assistant.graph_id]
    body = merged_run(configurable_as_context(graph, body), assistant)
    validate_input(assistant.graph_id, graph, body.input)
    validate_context(graph, body.context)
    if assistant.graph_id not in per_run:
        validate_breakpoints(graph, body)
    return PreparedRun(user, body, assistant)


def stored_kwargs(body: RunCreate, ephemeral: bool, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The run body as a run row (or a cron's payload) stores it."""
    kwargs = body.model_dump(exclude_none=True, exclude={"assistant_id", "multitask_strategy", *exclude})
    kwargs["stream_mode"] = body.stream_modes()
    kwargs["checkpoint_id"] = body.resolved_checkpoint_id()
    kwargs["ephemeral"] = ephemeral and body.on_completion != "keep"
    return kwargs


def validate_breakpoints(graph: Any, body: RunCreate) -> None:
    """``interrupt_before``/``after`` name nodes of the graph ("*": all); LangGraph would ignore a typo silently."""
    for field in ("interrupt_before", "interrupt_after"):
        names = getattr(body, field)
        unknown = [] if names in (None, "*") else [name for name in names if name not in node_names(graph)]
        if unknown:
            nodes = sorted(name for name in node_names(graph) if not name.startswith("__"))
            raise ApiError(422, "invalid_request", f"{field}: no node {unknown[0]!r}; the graph has {nodes}")


@lru_cache(maxsize=64)
def node_names(graph: Any) -> frozenset[str]:
    """The graph's nodes and its subgraphs', once per graph."""
    return frozenset(graph.nodes).union(*(sub.nodes for _, sub in graph.get_subgraphs(recurse=True)))


def validate_input(graph_id: str, graph: Any, payload: dict[str, Any] | None) -> None:
    """Check input against the graph's input schema: unknown fields and malformed messages are 422."""
    if payload is None:
        return
    schema = input_jsonschema(graph_id, graph)
    if schema is None:  # a schema that cannot be written as JSON Schema: LangGraph checks the input itself
        return
    properties = schema.get("properties", {})
    for field in payload:
        if field not in properties:
            raise ApiError(422, "invalid_input", f"input.{field}: unknown field; expected one of {sorted(properties)}")
    parsed: list[BaseMessage] = []
    if "messages" in payload:
        messages = payload["messages"]
        if not isinstance(messages, list):
            raise ApiError(422, "invalid_input", "input.messages: must be a list of messages")
        for index, message in enumerate(messages):
            try:
                parsed.extend(convert_to_messages([message]))
            except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as exc:
                raise ApiError(422, "invalid_input", f"input.messages.{index}: {exc}") from exc
    if schema.get(USER_TURN) and (not parsed or parsed[-1].type != "human"):
        got = f"the last is {parsed[-1].type!r}" if parsed else "there are none"
        raise ApiError(422, "invalid_input", f"input.messages: this graph answers a user's message, and {got}")


async def refusal(graph: Any, thread_key: str, body: RunCreate) -> ApiError | None:
    """Why the thread's checkpoints refuse the run (a 404 or 409 to raise if admission finds it holds), or None.

    A resume needs a pending interrupt; new input must not silently drop one; a named checkpoint must exist.
    """
    try:
        await _check_resumable(graph, thread_key, body)
    except ApiError as refused:
        return refused
    return None


async def _check_resumable(graph: Any, thread_key: str, body: RunCreate) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": thread_key}}
    resuming = body.command is not None and body.command.resume is not None
    if checkpoint_id := body.resolved_checkpoint_id():
        at_config: RunnableConfig = {"configurable": {**config["configurable"], "checkpoint_id": checkpoint_id}}
        at = await graph.aget_state(at_config)
        if at.created_at is None:
            raise not_found("checkpoint", checkpoint_id)
        # LangGraph would replay the earlier answer stored at that checkpoint and drop this one silently
        if resuming and not any(task.interrupts and task.result is None for task in at.tasks):
            message = "no unanswered interrupt at this checkpoint; run from an earlier checkpoint to be asked again"
            raise ApiError(409, "nothing_to_resume", message)
        return
    state = await graph.aget_state(config)
    # a state edit while a node waits leaves that node next without its interrupt: resuming re-runs it and
    # its ``interrupt()`` takes the answer (Studio's edit-then-continue), as LangGraph itself allows
    if resuming and not state.interrupts and not state.next:
        raise ApiError(409, "nothing_to_resume", "command.resume was sent but the thread has no pending interrupt")
    if state.interrupts and not resuming and body.command is None:
        ids = [i.id for i in state.interrupts]
        raise ApiError(
            409,
            "thread_interrupted",
            "the thread is waiting on an interrupt; answer it with command.resume, or fork with checkpoint_id",
            interrupt_ids=ids,
        )
