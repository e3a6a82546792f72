"""Runs: background, streamed (SSE or NDJSON) and waited, on a thread or stateless; list, join, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from pydantic import Field, model_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

from loom.threads import public_thread_id
from server.auth import Caller, CurrentCaller
from server.db import RunRow, RunStatus
from server.deps import Loom, Services, owned_run, owned_thread, visible_run, visible_thread
from server.engine import admission, records
from server.engine.queue import UNFINISHED
from server.engine.wire import JsonText, run_path, run_view
from server.errors import ApiError
from server.responses import Run
from server.schemas import MAX_OFFSET, RunCreate, Strict, stream_mode_problem

router = APIRouter(tags=["runs"])
NDJSON = "application/x-ndjson"
RunBatch = Annotated[list[RunCreate], Field(min_length=1, max_length=100)]


# creation ------------------------------------------------------------------------------------------
async def start_run(
    loom: Services, caller: Caller, thread_id: str | None, body: RunCreate, idempotency_key: str | None
) -> RunRow:
    """Prepare and admit a run (``server.engine.admission``): committed before the caller gets an answer.

    A body refused on a thread that does not exist (and is not to be made) is a 404 about the thread: the
    thread is what the caller got wrong first."""
    try:
        prepared = await loom.prepare(caller.identity, body, thread_id is None)
    except ApiError:
        if thread_id is not None and body.if_not_exists == "reject":
            async with loom.sessions() as session:
                await owned_thread(session, thread_id, caller.identity)
        raise
    return await admission.admit(loom.manager, caller, thread_id, prepared, idempotency_key)


# endpoints -----------------------------------------------------------------------------------------
@router.post("/threads/{thread_id}/runs")
async def create(
    thread_id: str, body: RunCreate, loom: Loom, caller: CurrentCaller, response: Response,
    idempotency_key: str | None = Header(default=None),
) -> Run:  # fmt: skip
    """Start a background run on the thread: stored before this answers, then queued or started.

    Answers 200 with the run (``pending``, or ``running`` if a worker here took it at once). With
    ``if_not_exists=create`` a missing thread is made; an ``Idempotency-Key`` answers a repeated request with the
    run it created first. 403 if the project's auth refuses; 404 for an unknown thread, assistant or checkpoint;
    409 if the thread refuses it (busy under ``reject``, an interrupt waiting, nothing to resume, another graph);
    422 for a body that does not fit the graph, naming the field; 429 when the queue (or the caller's share) is full.
    """
    run = await start_run(loom, caller, thread_id, body, idempotency_key)
    response.headers["Content-Location"] = f"/threads/{thread_id}/runs/{run.run_id}"
    return run_view(run)


@router.post("/runs")
async def create_stateless(body: RunCreate, loom: Loom, caller: CurrentCaller) -> Run:
    """Start a background run on a thread of its own, deleted when the run ends unless ``on_completion=keep``.

    Answers 200 with the run; 403, 404 (assistant, checkpoint), 409 (nothing to resume), 422 or 429 as for a
    thread's run.
    """
    return run_view(await start_run(loom, caller, None, body, None))


@router.post("/threads/{thread_id}/runs/stream")
async def stream(
    thread_id: str, body: RunCreate, request: Request, loom: Loom, caller: CurrentCaller,
    idempotency_key: str | None = Header(default=None),
) -> Response:  # fmt: skip
    """Start a run on the thread and stream its events until it ends.

    Answers 200 with SSE (NDJSON with ``Accept: application/x-ndjson``): ``metadata``, one event per requested
    ``stream_mode``, ``error`` if it failed, ``end`` with ``{status, interrupts, checkpoint}``; each with an ``id``
    to rejoin with ``Last-Event-ID``. Refused before the run is stored: 403, 404, 409, 422 or 429 as ``/runs``.
    """
    run = await start_run(loom, caller, thread_id, body, idempotency_key)
    return event_response(loom, run, request, 0, body.on_disconnect == "cancel")


@router.post("/runs/stream")
async def stream_stateless(body: RunCreate, request: Request, loom: Loom, caller: CurrentCaller) -> Response:
    """Start a run on a thread of its own and stream its events until it ends (SSE or NDJSON, as a thread's run).

    Refused before the run is stored: 403, 404, 409, 422 or 429.
    """
    run = await start_run(loom, caller, None, body, None)
    return event_response(loom, run, request, 0, body.on_disconnect == "cancel")


@router.post("/threads/{thread_id}/runs/wait")
async def wait(
    thread_id: str, body: RunCreate, loom: Loom, caller: CurrentCaller,
    idempotency_key: str | None = Header(default=None),
) -> Any:  # fmt: skip
    """Start a run on the thread and answer once it has ended.

    Answers 200 with the final values (the output schema's keys; ``__interrupt__`` when it waits on a human), or
    ``{"__error__": {error, message}}`` for a run that failed or timed out; ``Location`` names its ``/join``.
    Until then a newline every ``keepalive_s`` keeps the connection (JSON parsers skip it).
    Refused before the run is stored: 403, 404, 409, 422 or 429 as ``/runs``.
    """
    run = await start_run(loom, caller, thread_id, body, idempotency_key)
    return waited(loom, partial(records.final_answer, loom.manager, run.run_id, run.status), wait_headers(run))


@router.post("/runs/wait")
async def wait_stateless(body: RunCreate, loom: Loom, caller: CurrentCaller) -> Any:
    """Start a run on a thread of its own and answer its final values (or ``__error__``) once it has ended.

    Refused before the run is stored: 403, 404, 409, 422 or 429.
    """
    run = await start_run(loom, caller, None, body, None)
    return waited(loom, partial(records.final_answer, loom.manager, run.run_id, run.status), wait_headers(run))


@router.post("/runs/batch")
async def create_batch(body: RunBatch, loom: Loom, caller: CurrentCaller) -> list[Run]:
    """Start stateless background runs, one per body, in order; answers 200 with the runs.

    Every body is checked before any run is created (a 404 or 422 names the body's index); each is then
    admitted like a single run, so a full queue (429) keeps the runs already created."""
    prepared = []
    for index, item in enumerate(body):
        try:
            prepared.append(await loom.prepare(caller.identity, item, stateless=True))
        except ApiError as refused:
            raise ApiError(refused.status, refused.code, f"{index}.{refused.message}") from refused
    return [run_view(await admission.admit(loom.manager, caller, None, run, None)) for run in prepared]


def waited(loom: Services, answer: Callable[[], Awaitable[Any]], headers: dict[str, str] | None = None) -> Response:
    """The final answer, sent once ``answer()`` is ready, with a newline every ``keepalive_s`` until then (as
    langgraph-api: JSON parsers skip leading whitespace), so proxies with idle timeouts keep the connection."""
    interval = loom.settings.keepalive_s

    async def body() -> AsyncIterator[bytes]:
        pending = asyncio.ensure_future(answer())
        try:
            while not (await asyncio.wait({pending}, timeout=interval))[0]:
                yield b"\n"
            yield encoded(pending.result())
        finally:
            pending.cancel()  # the client left first: nothing waits on the answer any more

    return StreamingResponse(body(), media_type="application/json", headers=headers)


def encoded(answer: Any) -> bytes:
    """A final answer as JSON: stored JSON as it is, values as FastAPI would encode them."""
    if isinstance(answer, JsonText):
        return answer.text.encode()
    return json.dumps(jsonable_encoder(answer), ensure_ascii=False, separators=(",", ":")).encode()


def wait_headers(run: RunRow) -> dict[str, str]:
    """As langgraph-api: where to join the run, and the run itself."""
    return {"Location": f"{run_path(run)}/join", "Content-Location": run_path(run)}


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str, loom: Loom, caller: CurrentCaller, limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET), status: RunStatus | None = None,
) -> list[Run]:  # fmt: skip
    """The thread's runs, newest first (``status``: only those); 200, or 404 for a thread the caller cannot see."""
    async with loom.sessions() as session:
        thread = await visible_thread(session, thread_id, caller, "search")
    return [run_view(row) for row in await records.thread_runs(loom.sessions, thread.thread_id, status, limit, offset)]


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get(thread_id: str, run_id: str, loom: Loom, caller: CurrentCaller) -> Run:
    """The run as stored now (its status, attempt, error, usage); 200, or 404 for a run the caller cannot see."""
    async with loom.sessions() as session:
        return run_view(await visible_run(session, thread_id, run_id, caller, "read"))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete(thread_id: str, run_id: str, loom: Loom, caller: CurrentCaller) -> Response:
    """Delete a run that has ended (its thread's checkpoints stay); 204, 404 if unseen, 409 if still active."""
    async with loom.sessions() as session:
        await visible_run(session, thread_id, run_id, caller, "delete")
    await records.delete_finished(loom.sessions, run_id)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel(
    thread_id: str, run_id: str, loom: Loom, caller: CurrentCaller, wait: bool = False,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:  # fmt: skip
    """Stop the run where it is (``rollback``: and undo what it wrote); finished steps stay checkpointed.

    Answers 202 once the stop is asked, or 204 with ``wait=true`` once the run has stopped; 404 for a run the
    caller cannot see, 409 for one that has already ended."""
    async with loom.sessions() as session:
        run = await visible_run(session, thread_id, run_id, caller, "update")
    if run.status not in UNFINISHED:
        raise ApiError(409, "run_finished", f"run {run_id} already finished with status {run.status}")
    await loom.manager.cancel(run_id, reason="rollback" if action == "rollback" else "cancelled")
    if wait:
        await loom.manager.wait(run_id)
    return Response(status_code=202 if not wait else 204)


class RunsCancel(Strict):
    """Which runs ``POST /runs/cancel`` stops: ``run_ids`` (of ``thread_id`` if given), or every run in ``status``."""

    thread_id: str | None = None
    run_ids: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    status: Literal["pending", "running", "all"] | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> RunsCancel:
        if (self.status is None) == (self.run_ids is None):
            raise ValueError("send either run_ids (and optionally thread_id) or status")
        if self.status is not None and self.thread_id is not None:
            raise ValueError("status cancels the caller's runs on every thread; thread_id goes with run_ids")
        return self


@router.post("/runs/cancel", status_code=204)
async def cancel_many(
    body: RunsCancel, loom: Loom, caller: CurrentCaller,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:  # fmt: skip
    """Stop several runs, as ``/threads/{id}/runs/{id}/cancel`` stops one (``rollback``: and undo what they wrote).

    ``run_ids`` (of ``thread_id`` if given): every one must be the caller's, or it is a 404 and none is stopped;
    those already ended are left as they are. ``status`` (``pending``, ``running`` or ``all``): every such run of
    the caller's. Answers 204 once every stop is asked; 404 (as langgraph-api) when none selected is pending or
    running; 422 for both selections or neither.
    """
    statuses = UNFINISHED if body.status == "all" else (cast(RunStatus, body.status),)
    found = [] if body.run_ids is not None else await records.owners_runs(loom.sessions, caller.identity, statuses)
    async with loom.sessions() as session:
        found += [await owned_run(session, body.thread_id, run_id, caller.identity) for run_id in body.run_ids or ()]
    runs = [run for run in found if await _may_stop(loom, run, caller, strict=body.run_ids is not None)]
    stoppable = [run for run in runs if run.status in UNFINISHED]
    if not stoppable:  # as langgraph-api: a selection that stops nothing is a 404
        raise ApiError(404, "run_not_found", "no runs found to cancel: none selected is pending or running")
    for run in stoppable:
        await loom.manager.cancel(run.run_id, reason="rollback" if action == "rollback" else "cancelled")
    return Response(status_code=204)


async def _may_stop(loom: Services, run: RunRow, caller: Caller, strict: bool) -> bool:
    """Whether the project's auth lets the caller stop ``run``; ``strict``: a refusal is the 404 it raises."""
    try:
        async with loom.sessions() as session:
            await visible_run(session, public_thread_id(run.thread_id or ""), run.run_id, caller, "update")
    except ApiError:
        if strict:
            raise
        return False
    return True


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join(thread_id: str, run_id: str, loom: Loom, caller: CurrentCaller) -> Any:
    """Wait for the run to end and answer as ``/wait`` does (newlines as keep-alive until then): its final
    values or ``{"__error__": …}``; 200, or 404 for a run the caller cannot see."""
    async with loom.sessions() as session:
        await visible_run(session, thread_id, run_id, caller, "read")
    return waited(loom, partial(records.final_answer, loom.manager, run_id))


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: str, run_id: str, request: Request, loom: Loom, caller: CurrentCaller,
    last_event_id: str | None = Header(default=None), cancel_on_disconnect: bool = False,
    stream_mode: Annotated[list[str] | None, Query(description="Only these modes' events (the run's own)")] = None,
) -> Response:  # fmt: skip
    """Follow the run's events from after ``Last-Event-ID`` (all of them without it) until its ``end``.

    Answers 200 with SSE or NDJSON as the run's own stream; ``stream_mode`` keeps only those modes' events
    (``metadata``, ``recovered``, ``error`` and ``end`` always come). 404 for a run the caller cannot see, 422
    for an unknown mode.
    """
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
        if (problem := stream_mode_problem(parsed)) is not None:
            raise ApiError(422, "invalid_request", f"stream_mode: {problem}")
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
def event_response(
    loom: Services,
    run: RunRow,
    request: Request,
    after: int,
    cancel_on_disconnect: bool,
    wanted: Callable[[str], bool] | None = None,
) -> Response:
    # the JS SDK reads the run id from Content-Location, so it names the run, not its stream
    headers = {"Location": f"{run_path(run)}/stream", "Content-Location": run_path(run)}

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
    return EventSourceResponse(sse, ping=loom.settings.keepalive_s, ping_message_factory=heartbeat, headers=headers)


def heartbeat() -> ServerSentEvent:
    """The keep-alive comment langgraph-api sends on a silent stream (``: heartbeat``)."""
    return ServerSentEvent(comment="heartbeat")
