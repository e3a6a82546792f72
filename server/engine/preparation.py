"""A run request prepared: the body checked against its graph before admission stores it.

One step turns a ``RunCreate`` body, the caller and the assistant it names into a ``PreparedRun``: the
assistant's config and context merged underneath the run's own, the input checked against the graph's
input schema (a chat graph's message must say something, and fit the embedded model's context),
breakpoints against its nodes, the context against its context schema (422 naming the field). What
depends on the thread's checkpoints (a resume needs a pending interrupt, a run without input needs a
checkpoint to continue) is read by ``refusal`` just before admission, which decides whether it counts.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig

from loom.settings import Settings
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


@dataclass(frozen=True)
class InputWindow:
    """The most input the served models take, where Loom knows it: the embedded model's context per slot,
    less the tokens kept for its reply. Other providers' windows are theirs: they refuse what does not fit."""

    context: int
    reply: int

    @classmethod
    def of(cls, settings: Settings) -> InputWindow | None:
        """The window when any role runs on the embedded model (``local:``), else None."""
        if not any(m.startswith("local:") for m in (settings.default_model, *settings.models.values())):
            return None
        return cls(settings.local_context_tokens, settings.model_max_tokens)

    @property
    def tokens(self) -> int:
        return max(self.context - self.reply, self.context // 2)


CHARS_PER_TOKEN = 4
"""An estimate: English text averages about four characters a token. A message just under the window may
still not fit with the graph's own prompt; the model's refusal then names the same setting."""


def prepare(
    user: str,
    body: RunCreate,
    assistant: AssistantRow,
    graphs: Mapping[str, Any],
    per_run: Container[str],
    window: InputWindow | None = None,
    stateless: bool = False,
) -> PreparedRun:
    """``body`` checked against the graph of ``assistant`` (``graphs``); 422 naming the field if it does not fit.

    Args:
        user: the caller's identity.
        body: the request's run body.
        assistant: the assistant the body names, already found visible to ``user``.
        graphs: the served graphs by id.
        per_run: ids of graphs rebuilt for each run from its config, whose nodes are unknown until then
            (their breakpoints are not checked).
        window: what the embedded model takes, if a role runs on it (``InputWindow.of``).
        stateless: the run gets a new thread, so there is no checkpoint it could continue without input.

    Returns:
        The prepared run, frozen.
    """
    graph = graphs[assistant.graph_id]
    body = merged_run(configurable_as_context(graph, body), assistant)
    if stateless and not body.resolved_checkpoint_id():
        require_input(body, continues=False)
    validate_input(assistant.graph_id, graph, body.input, window)
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


def require_input(body: RunCreate, continues: bool) -> None:
    """A run starts from its input, or continues a checkpoint (its pending nodes, a fork, an answered interrupt).

    Without either LangGraph fails it with ``EmptyInputError``, which langgraph-api answers 200 with."""
    if body.input is None and body.command is None and not continues:
        message = "input: required; the thread has no checkpoint to continue from (command.resume answers an interrupt)"
        raise ApiError(422, "invalid_input", message)


def validate_input(
    graph_id: str, graph: Any, payload: dict[str, Any] | None, window: InputWindow | None = None
) -> None:
    """Check input against the graph's input schema: unknown fields, malformed messages, a chat graph's missing
    or empty user message, and messages longer than the embedded model's context are 422."""
    if payload is None:
        return
    schema = input_jsonschema(graph_id, graph)
    if schema is None:  # a schema that cannot be written as JSON Schema: LangGraph checks the input itself
        return
    properties = schema.get("properties", {})
    for field in payload:
        if field not in properties:
            raise ApiError(422, "invalid_input", f"input.{field}: unknown field; expected one of {sorted(properties)}")
    parsed = _messages(payload)
    if schema.get(USER_TURN):
        _check_user_turn(parsed)
    if window is not None:
        _check_fits(parsed, window)


def _messages(payload: dict[str, Any]) -> list[BaseMessage]:
    if "messages" not in payload:
        return []
    messages = payload["messages"]
    if not isinstance(messages, list):
        raise ApiError(422, "invalid_input", "input.messages: must be a list of messages")
    parsed: list[BaseMessage] = []
    for index, message in enumerate(messages):
        try:
            parsed.extend(convert_to_messages([message]))
        except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as exc:
            raise ApiError(422, "invalid_input", f"input.messages.{index}: {exc}") from exc
    return parsed


def _check_user_turn(parsed: list[BaseMessage]) -> None:
    """A chat graph answers the user's message: the last one is theirs, and it says something."""
    if not parsed or parsed[-1].type != "human":
        got = f"the last is {parsed[-1].type!r}" if parsed else "there are none"
        raise ApiError(422, "invalid_input", f"input.messages: this graph answers a user's message, and {got}")
    content = parsed[-1].content
    blocks = [content] if isinstance(content, str) else content
    if not any(block.strip() if isinstance(block, str) else _says_something(block) for block in blocks):
        message = f"input.messages.{len(parsed) - 1}.content: empty; this graph answers the user's message"
        raise ApiError(422, "invalid_input", message)


def _says_something(block: Any) -> bool:
    """A content block with text, or one of another kind (an image, a file)."""
    return not isinstance(block, dict) or block.get("type") != "text" or bool(str(block.get("text", "")).strip())


def _check_fits(parsed: list[BaseMessage], window: InputWindow) -> None:
    chars = sum(len(message.text) for message in parsed)
    estimate = -(-chars // CHARS_PER_TOKEN)
    if estimate > window.tokens:
        message = (
            f"input.messages: about {estimate:,} tokens ({chars:,} characters), more than the embedded model takes: "
            f"LOOM_LOCAL_CONTEXT_TOKENS={window.context} less LOOM_MODEL_MAX_TOKENS={window.reply} for its reply; "
            "shorten the input or raise LOOM_LOCAL_CONTEXT_TOKENS"
        )
        raise ApiError(422, "input_too_long", message)


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
    require_input(body, continues=state.created_at is not None)
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
