"""Runs: background, streamed (SSE or NDJSON) and waited, on a thread or stateless; list, join, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig
from pydantic import Field
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse, ServerSentEvent

from loom.threads import public_thread_id, thread_key
from server.assistants import AssistantRow, merged_run, run_metadata
from server.auth import Caller, CurrentCaller, matches
from server.db import RunRow, ThreadRow, insert_row, new_id, now, transaction
from server.deps import Loom, Services, thread_keys, visible_run, visible_thread
from server.engine import queue
from server.engine.context import configurable_as_context, validate_context
from server.engine.manager import interrupt_views, output_values
from server.errors import ApiError, not_found
from server.observability import telemetry
from server.schemas import MAX_OFFSET, RunCreate, StreamMode
from state.common import USER_TURN

router = APIRouter(tags=["runs"])
NDJSON = "application/x-ndjson"
RunBatch = Annotated[list[RunCreate], Field(min_length=1, max_length=100)]
MAX_THREAD_ID = 64


# creation ------------------------------------------------------------------------------------------
async def start_run(
    loom: Services, caller: Caller, thread_id: str | None, body: RunCreate, idempotency_key: str | None
) -> RunRow:
    """Validate, admit and store a run in one transaction; the row is committed before the caller gets an answer.

    Capacity, the thread's one-active-run rule and the multitask strategy are decided in that same
    transaction (``server.engine.queue``), so a request gets a committed run or a 4xx, never both.
    """
    user = caller.identity
    body, assistant = await prepared(loom, user, body)
    asked = {"thread_id": thread_id, "assistant_id": body.assistant_id, "metadata": dict(body.metadata or {})}
    filters = await caller.authorize("threads", "create_run", asked)
    # the worker continues the trace and acts as the caller the server authenticated
    kwargs = {**run_kwargs(body, thread_id is None), **telemetry.traceparent(), "auth_user": caller.user.dict()}
    admission = Admission(
        user=user,
        thread_id=thread_id,
        key=thread_key(user, thread_id or new_id()),
        body=body,
        assistant=assistant,
        asked=asked,
        filters=filters,
        kwargs=kwargs,
        idempotency_key=idempotency_key,
        capacity=loom.manager.capacity(),
        per_user=loom.settings.user_max_unfinished_runs,
        lease=loom.manager.lease,
    )
    # The thread's checkpoint is read before the transaction, so the database is not held during it; the
    # verdict counts only once the transaction has shown the thread is the caller's and idle. A stateless
    # run's new thread has no checkpoint: only a resume or a checkpoint id can be refused there.
    if thread_id or body.command or body.resolved_checkpoint_id():
        admission.verdict = await _resumable(loom, admission.key, body, assistant.graph_id)
    with loom.manager.slot_guard() as slot:
        async with loom.manager.creating(admission.key if thread_id else None):
            admission.free_slot = slot.take()
            # A client that goes away mid-request cannot stop the transaction on the database thread; shielded,
            # a run it committed is also announced (or started here) instead of waiting for its lease to lapse.
            return await asyncio.shield(_admit_and_announce(loom, admission))


async def _admit_and_announce(loom: Services, admission: Admission) -> RunRow:
    try:
        run, replaced, new = await transaction(loom.sessions, admission.admit)
    except StoredUnderOwnId as legacy:  # a thread stored before keys: checked again under its own id
        admission.key = legacy.thread_id
        admission.verdict = await _resumable(loom, legacy.thread_id, admission.body, admission.assistant.graph_id)
        run, replaced, new = await transaction(loom.sessions, admission.admit)
    if new:
        await loom.manager.submitted(run, replaced, direct=run.lease_owner is not None)
    return run


class StoredUnderOwnId(Exception):
    """The run's thread predates per-owner keys; its checkpoint is read under its bare id, then admission retried."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id


@dataclass
class Admission:
    """One run request, checked and stored by ``admit`` in one database transaction (sync: ``server.db``)."""

    user: str
    thread_id: str | None
    """The public id the request names; None for a stateless run (its thread is made here, ephemeral)."""
    key: str
    """The stored thread's key, whose checkpoint ``verdict`` was read from."""
    body: RunCreate
    assistant: AssistantRow
    asked: dict[str, Any]
    filters: dict[str, Any]
    kwargs: dict[str, Any]
    idempotency_key: str | None
    capacity: int
    """Accepted-but-unfinished runs allowed (``RunManager.capacity``)."""
    per_user: int | None
    """Of which one user's (``LOOM_USER_MAX_UNFINISHED_RUNS``)."""
    lease: Callable[[RunRow], None]
    """Marks a run claimed by this process's worker (``RunManager.lease``)."""
    verdict: ApiError | None = None
    free_slot: bool = False
    """A worker slot here is reserved: an idle thread's run is claimed in the same transaction, no queue hop."""

    def admit(self, session: Session) -> tuple[RunRow, queue.Replaced | None, bool]:
        """(run, what it replaced, whether it is new): the run committed, or an ApiError and nothing stored.

        Plain statements (``server.db``) but for the rare thread with runs in flight, whose runs are loaded."""
        body = self.body
        queue.lock_admission(session)
        if self.idempotency_key and (existing := _by_key(session, self.user, self.idempotency_key)):
            return existing, None, False
        thread = self._thread(session)
        if thread.thread_id != self.key:
            raise StoredUnderOwnId(thread.thread_id)
        active = [] if thread.new else queue.inflight(session, thread.thread_id)
        if active and body.multitask_strategy == "reject":
            raise ApiError(409, "thread_busy", "the thread has an active run (multitask_strategy=reject)")
        if active and body.command is not None and body.command.resume is not None:
            message = "a run is active on this thread; resume once it has ended with an interrupt"
            raise ApiError(409, "thread_busy", message)
        # a queued run meets the thread as the runs before it leave it, but no later run makes a missing
        # checkpoint appear (its ids are new): that verdict holds even behind them
        if self.verdict is not None and (not active or self.verdict.status == 404):
            raise self.verdict
        replacing = bool(active) and body.multitask_strategy in ("interrupt", "rollback")
        queue.admit(session, self.capacity, self.user, self.per_user, len(active) if replacing else 0)
        replaced = queue.replace_inflight(active, body.multitask_strategy) if replacing else None
        created = now()
        config_metadata = self.body.config.metadata if self.body.config else None
        layers = (self.assistant.metadata_, thread.metadata, config_metadata, self.asked["metadata"])
        metadata = run_metadata(self.assistant.assistant_id, *layers)
        self.kwargs["metadata"] = metadata  # what the graph finds in ``config["metadata"]``
        run = RunRow(
            run_id=new_id(),
            thread_id=thread.thread_id,
            owner=self.user,
            assistant_id=self.assistant.assistant_id,
            graph_id=self.assistant.graph_id,
            multitask_strategy=body.multitask_strategy,
            kwargs=self.kwargs,
            metadata_=metadata,
            idempotency_key=f"{self.user}:{self.idempotency_key}" if self.idempotency_key else None,
            status="pending",
            attempt=1,
            created_at=created,
            updated_at=created,
        )
        if not active and self.free_slot:  # claimed in this transaction
            thread.status = "busy"
            self.lease(run)
        thread.store(session, self.assistant)
        insert_row(session, run)
        return run, replaced, True

    def _thread(self, session: Session) -> AdmittedThread:
        """The run's thread: found (and passing the project's auth filter), or new with the run's metadata."""
        graph_id, thread_id = self.assistant.graph_id, self.thread_id
        if thread_id is None:
            metadata = {**self.asked["metadata"], "ephemeral": True}
            return AdmittedThread(self.key, self.user, graph_id, "idle", metadata, new=True)
        found = _stored_thread(session, thread_id, self.user)
        if found is not None and not matches(found.metadata, self.filters):
            raise not_found("thread", thread_id)
        if found is None and self.body.if_not_exists != "create":
            raise not_found("thread", thread_id)
        if found is None:
            if len(thread_id) > MAX_THREAD_ID:
                raise ApiError(422, "invalid_request", f"thread_id: at most {MAX_THREAD_ID} characters")
            key = thread_key(self.user, thread_id)
            return AdmittedThread(key, self.user, graph_id, "idle", dict(self.asked["metadata"]), new=True)
        if found.graph_id not in (None, graph_id):
            raise ApiError(409, "graph_mismatch", f"thread {thread_id!r} belongs to graph {found.graph_id!r}")
        return found


THREAD_FOR_UPDATE = (
    select(ThreadRow.thread_id, ThreadRow.owner, ThreadRow.graph_id, ThreadRow.status, ThreadRow.metadata_)
    .where(ThreadRow.thread_id == bindparam("p_thread"))
    .with_for_update()  # PostgreSQL: the row is this transaction's; SQLite's BEGIN IMMEDIATE already is
)
SET_THREAD = (
    update(ThreadRow)
    .where(ThreadRow.thread_id == bindparam("p_thread"))
    .values({ThreadRow.graph_id: bindparam("p_graph"), ThreadRow.status: bindparam("p_status"),
             ThreadRow.metadata_: bindparam("p_metadata")})
)  # fmt: skip
"""Admission's statements on the thread, built once: composing one costs more CPU than SQLite takes to run it."""


@dataclass
class AdmittedThread:
    """The run's thread as admission reads and writes it: a few columns, by plain statements."""

    thread_id: str
    owner: str
    graph_id: str | None
    status: str
    metadata: dict[str, Any]
    new: bool = False

    def store(self, session: Session, assistant: AssistantRow) -> None:
        """Inserted or updated with the run's graph; as langgraph-api, UIs list a graph's threads by these keys."""
        metadata = {**self.metadata, "graph_id": assistant.graph_id, "assistant_id": assistant.assistant_id}
        if self.new:
            created = now()
            thread = ThreadRow(
                thread_id=self.thread_id,
                owner=self.owner,
                graph_id=assistant.graph_id,
                status=self.status,
                metadata_=metadata,
                created_at=created,
                updated_at=created,
            )
            insert_row(session, thread)
            return
        values = {"p_thread": self.thread_id, "p_graph": assistant.graph_id, "p_status": self.status}
        session.connection().execute(SET_THREAD, {**values, "p_metadata": metadata})


def _stored_thread(session: Session, thread_id: str, user: str) -> AdmittedThread | None:
    """``deps.stored_thread`` by a plain statement, locked on PostgreSQL (one creation at a time)."""
    for key in thread_keys(user, thread_id):
        found = session.connection().execute(THREAD_FOR_UPDATE, {"p_thread": key}).first()
        if found is not None and found.owner == user:
            return AdmittedThread(*found)
    return None


async def prepared(loom: Services, user: str, body: RunCreate) -> tuple[RunCreate, AssistantRow]:
    """The body with its assistant's config and context underneath, its input and context checked (422)."""
    assistant = await loom.assistant(body.assistant_id, user)
    body = merged_run(configurable_as_context(loom.graphs[assistant.graph_id], body), assistant)
    validate_input(loom, assistant.graph_id, body.input)
    validate_context(loom.graphs[assistant.graph_id], body.context)
    if assistant.graph_id not in loom.manager.per_run:  # a factory's nodes may depend on the run's config
        validate_breakpoints(loom.graphs[assistant.graph_id], body)
    return body, assistant


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


def run_kwargs(body: RunCreate, ephemeral: bool, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The run body as a run row stores it (and replays it on recovery)."""
    kwargs = body.model_dump(exclude_none=True, exclude={"assistant_id", "multitask_strategy", *exclude})
    kwargs["stream_mode"] = body.stream_modes()
    kwargs["checkpoint_id"] = body.resolved_checkpoint_id()
    kwargs["ephemeral"] = ephemeral and body.on_completion != "keep"
    return kwargs


def _by_key(session: Session, user: str, key: str) -> RunRow | None:
    return session.scalar(select(RunRow).where(RunRow.idempotency_key == f"{user}:{key}"))


async def _resumable(loom: Services, thread_id: str, body: RunCreate, graph_id: str) -> ApiError | None:
    try:
        await _check_resumable(loom, thread_id, body, graph_id)
    except ApiError as refused:
        return refused
    return None


async def _check_resumable(loom: Services, thread_id: str, body: RunCreate, graph_id: str) -> None:
    """A resume needs a pending interrupt; new input must not silently drop one; checkpoints must exist."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    resuming = body.command is not None and body.command.resume is not None
    if checkpoint_id := body.resolved_checkpoint_id():
        at_config: RunnableConfig = {"configurable": {**config["configurable"], "checkpoint_id": checkpoint_id}}
        at = await loom.graphs[graph_id].aget_state(at_config)
        if at.created_at is None:
            raise not_found("checkpoint", checkpoint_id)
        # LangGraph would replay the earlier answer stored at that checkpoint and drop this one silently
        if resuming and not any(task.interrupts and task.result is None for task in at.tasks):
            message = "no unanswered interrupt at this checkpoint; run from an earlier checkpoint to be asked again"
            raise ApiError(409, "nothing_to_resume", message)
        return
    snapshot = await loom.graphs[graph_id].aget_state(config)
    # a state edit while a node waits leaves that node next without its interrupt: resuming re-runs it and
    # its ``interrupt()`` takes the answer (Studio's edit-then-continue), as LangGraph itself allows
    if resuming and not snapshot.interrupts and not snapshot.next:
        raise ApiError(409, "nothing_to_resume", "command.resume was sent but the thread has no pending interrupt")
    if snapshot.interrupts and not resuming and body.command is None:
        ids = [i.id for i in snapshot.interrupts]
        raise ApiError(
            409,
            "thread_interrupted",
            "the thread is waiting on an interrupt; answer it with command.resume, or fork with checkpoint_id",
            interrupt_ids=ids,
        )


def validate_input(loom: Services, graph_id: str, payload: dict[str, Any] | None) -> None:
    """Check input against the graph's input schema: unknown fields and malformed messages are 422."""
    if payload is None:
        return
    schema = input_schema(loom.graphs[graph_id])
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


@lru_cache(maxsize=64)
def input_schema(graph: Any) -> dict[str, Any]:
    """The input's JSON schema; building it costs ~40 ms of CPU, so once per graph."""
    schema: dict[str, Any] = graph.get_input_jsonschema()
    return schema


# endpoints -----------------------------------------------------------------------------------------
@router.post("/threads/{thread_id}/runs")
async def create(
    thread_id: str, body: RunCreate, loom: Loom, caller: CurrentCaller, response: Response,
    idempotency_key: str | None = Header(default=None),
) -> dict[str, Any]:  # fmt: skip
    run = await start_run(loom, caller, thread_id, body, idempotency_key)
    response.headers["Content-Location"] = f"/threads/{thread_id}/runs/{run.run_id}"
    return run_view(run)


@router.post("/runs")
async def create_stateless(body: RunCreate, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    return run_view(await start_run(loom, caller, None, body, None))


@router.post("/threads/{thread_id}/runs/stream")
async def stream(
    thread_id: str, body: RunCreate, request: Request, loom: Loom, caller: CurrentCaller,
    idempotency_key: str | None = Header(default=None),
) -> Response:  # fmt: skip
    run = await start_run(loom, caller, thread_id, body, idempotency_key)
    return event_response(loom, run, request, 0, body.on_disconnect == "cancel")


@router.post("/runs/stream")
async def stream_stateless(body: RunCreate, request: Request, loom: Loom, caller: CurrentCaller) -> Response:
    run = await start_run(loom, caller, None, body, None)
    return event_response(loom, run, request, 0, body.on_disconnect == "cancel")


@router.post("/threads/{thread_id}/runs/wait")
async def wait(
    thread_id: str, body: RunCreate, loom: Loom, caller: CurrentCaller, response: Response,
    idempotency_key: str | None = Header(default=None),
) -> Any:  # fmt: skip
    run = await start_run(loom, caller, thread_id, body, idempotency_key)
    return with_headers(await outcome(loom, run.run_id, run.status), wait_headers(run), response)


@router.post("/runs/wait")
async def wait_stateless(body: RunCreate, loom: Loom, caller: CurrentCaller, response: Response) -> Any:
    run = await start_run(loom, caller, None, body, None)
    return with_headers(await outcome(loom, run.run_id, run.status), wait_headers(run), response)


@router.post("/runs/batch")
async def create_batch(body: RunBatch, loom: Loom, caller: CurrentCaller) -> list[dict[str, Any]]:
    """Stateless background runs, one per body, in order. Every body is checked before any run is created
    (a 4xx names the body's index); each is then admitted like a single run, so a full queue (429) keeps
    the runs already created."""
    for index, item in enumerate(body):
        try:
            await prepared(loom, caller.identity, item)
        except ApiError as refused:
            raise ApiError(refused.status, refused.code, f"{index}.{refused.message}") from refused
    return [run_view(await start_run(loom, caller, None, item, None)) for item in body]


def with_headers(answer: Any, headers: dict[str, str], response: Response) -> Any:
    """``headers`` on the answer, whether a ready ``Response`` (stored output) or values FastAPI will encode."""
    (answer if isinstance(answer, Response) else response).headers.update(headers)
    return answer


def wait_headers(run: RunRow) -> dict[str, str]:
    """As langgraph-api: where to join the run, and the run itself."""
    run_path = f"/threads/{public_thread_id(run.thread_id or '')}/runs/{run.run_id}"
    return {"Location": f"{run_path}/join", "Content-Location": run_path}


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str, loom: Loom, caller: CurrentCaller, limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET), status: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    async with loom.sessions() as session:
        thread = await visible_thread(session, thread_id, caller, "search")
        query = select(RunRow).where(RunRow.thread_id == thread.thread_id).order_by(RunRow.created_at.desc())
        if status:
            query = query.where(RunRow.status == status)
        rows = (await session.scalars(query.offset(offset).limit(limit))).all()
    return [run_view(row) for row in rows]


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get(thread_id: str, run_id: str, loom: Loom, caller: CurrentCaller) -> dict[str, Any]:
    async with loom.sessions() as session:
        return run_view(await visible_run(session, thread_id, run_id, caller, "read"))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete(thread_id: str, run_id: str, loom: Loom, caller: CurrentCaller) -> Response:
    async with loom.sessions.begin() as session:
        run = await visible_run(session, thread_id, run_id, caller, "delete")
        if run.status in ("pending", "running"):
            raise ApiError(409, "run_active", "cancel the run before deleting it")
        await session.delete(run)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel(
    thread_id: str, run_id: str, loom: Loom, caller: CurrentCaller, wait: bool = False,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:  # fmt: skip
    async with loom.sessions() as session:
        run = await visible_run(session, thread_id, run_id, caller, "update")
    if run.status not in ("pending", "running"):
        raise ApiError(409, "run_finished", f"run {run_id} already finished with status {run.status}")
    await loom.manager.cancel(run_id, reason="rollback" if action == "rollback" else "cancelled")
    if wait:
        await loom.manager.wait(run_id)
    return Response(status_code=202 if not wait else 204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join(thread_id: str, run_id: str, loom: Loom, caller: CurrentCaller) -> Any:
    async with loom.sessions() as session:
        await visible_run(session, thread_id, run_id, caller, "read")
    return await outcome(loom, run_id)


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: str, run_id: str, request: Request, loom: Loom, caller: CurrentCaller,
    last_event_id: str | None = Header(default=None), cancel_on_disconnect: bool = False,
    stream_mode: Annotated[list[str] | None, Query(description="Only these modes' events (the run's own)")] = None,
) -> Response:  # fmt: skip
    wanted = joined_modes(stream_mode or [])
    async with loom.sessions() as session:
        run = await visible_run(session, thread_id, run_id, caller, "read")
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return event_response(loom, run, request, after, cancel_on_disconnect, wanted)


CONTROL_EVENTS = frozenset({"metadata", "recovered", "error", "end"})
"""Sent whatever modes a join asks for: without them a client could not tell how the run went."""


def joined_modes(asked: list[str]) -> Callable[[str], bool] | None:
    """The filter of a join's ``stream_mode`` (repeated, or a JSON array as langgraph-api also takes), or None.

    As langgraph-api: a subgraph's ``mode|ns`` events go with their mode, ``messages`` and ``messages-tuple``
    take every ``messages…`` event."""
    modes: set[str] = set()
    for value in filter(None, asked):  # the SDK sends ``stream_mode=`` when it was given none
        parsed = _json_list(value) if value.startswith("[") else [value]
        unknown = [mode for mode in parsed if mode not in get_args(StreamMode)]
        if unknown:
            raise ApiError(422, "invalid_request", f"stream_mode: unknown mode {unknown[0]!r}")
        modes.update(parsed)
    if not modes:
        return None
    messages = bool(modes & {"messages", "messages-tuple"})

    def wanted(name: str) -> bool:
        base = name.partition("|")[0]
        return name in CONTROL_EVENTS or base in modes or (messages and base.startswith("messages"))

    return wanted


def _json_list(value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(mode, str) for mode in parsed):
        raise ApiError(422, "invalid_request", "stream_mode: a mode, or a JSON array of modes")
    return parsed


# responses -----------------------------------------------------------------------------------------
def run_view(run: RunRow) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": public_thread_id(run.thread_id) if run.thread_id else None,
        "assistant_id": run.assistant_id,
        "status": run.status,
        "metadata": run.metadata_,
        "kwargs": {key: value for key, value in run.kwargs.items() if key != "auth_user"},
        "multitask_strategy": run.multitask_strategy,
        "attempt": run.attempt,
        "error": run.error,
        "usage": run.usage,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }


def event_response(
    loom: Services,
    run: RunRow,
    request: Request,
    after: int,
    cancel_on_disconnect: bool,
    wanted: Callable[[str], bool] | None = None,
) -> Response:
    run_path = f"/threads/{public_thread_id(run.thread_id or '')}/runs/{run.run_id}"
    # the JS SDK reads the run id from Content-Location, so it names the run, not its stream
    headers = {"Location": f"{run_path}/stream", "Content-Location": run_path}

    async def events() -> AsyncIterator[Any]:
        finished = False
        try:
            async for event in loom.manager.events(run.run_id, after, run.status):
                if wanted is None or wanted(event.name):
                    yield event
            finished = True
        finally:
            if not finished and cancel_on_disconnect:  # the response is being cancelled: no await here
                loom.manager.cancel_soon(run.run_id)

    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse((e.ndjson() async for e in events()), media_type=NDJSON, headers=headers)
    sse = (ServerSentEvent(data=e.data, event=e.name, id=str(e.seq)) async for e in events())
    return EventSourceResponse(sse, ping=15, headers=headers)


async def outcome(loom: Services, run_id: str, status: str | None = None) -> Any:
    """The final state values of a finished run, or ``{"__error__": …}`` as langgraph-api answers.

    Read from the run's row, whichever process executed it: the values were stored there, as JSON, with its outcome
    (when this process executed it, it kept that outcome for its own waiter).
    """
    await loom.manager.wait(run_id, status)
    recorded = loom.manager.recorded(run_id)  # it ran here: what it committed is what the row would answer
    if recorded is not None and (answer := _answer(recorded.status, recorded.error, recorded.output)) is not None:
        return answer
    ended = select(RunRow.status, RunRow.error, RunRow.output, RunRow.thread_id, RunRow.graph_id, RunRow.kwargs)
    run = await transaction(
        loom.sessions, lambda session: session.connection().execute(ended.where(RunRow.run_id == run_id)).first()
    )
    if run is None:
        raise not_found("run", run_id)
    if (answer := _answer(run.status, run.error, run.output)) is not None:
        return answer
    if run.thread_id is None or run.kwargs.get("ephemeral"):
        return {}
    snapshot = await loom.graphs[run.graph_id].aget_state({"configurable": {"thread_id": run.thread_id}})
    return output_values(loom.graphs[run.graph_id], snapshot.values, interrupt_views(snapshot.interrupts))


def _answer(status: str, error: dict[str, Any] | None, output: str | None) -> Any:
    """What an ended run's outcome answers by itself (its error, or its stored values); None if neither."""
    if status in ("error", "timeout"):
        return {"__error__": error or {"error": status, "message": status}}
    return Response(output, media_type="application/json") if output is not None else None
