"""Evaluation datasets over HTTP (issue 25): the JSONL examples ``loom eval run`` reads, stored per user and
versioned, and examples made from stored threads."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Response
from langchain_core.runnables import RunnableConfig
from pydantic import Field, ValidationError

from loom.datasets import DatasetError, Example, parse_examples, state_expectations
from loom.threads import public_thread_id
from server.auth import CurrentCaller
from server.data import datasets, threads
from server.data.datasets import DatasetRow, Examples
from server.deps import Loom, caller_thread
from server.errors import ApiError
from server.responses import Dataset, DatasetSummary, DatasetVersion
from server.schemas import MAX_OFFSET, Strict

router = APIRouter(prefix="/evals/datasets", tags=["evals"])
MAX_EXAMPLES = 10_000
ExampleLines = list[Any] | str
EXAMPLES_DOC = "A list of examples, or JSONL text (one a line); each as `loom eval run` reads a dataset file's lines."


class DatasetCreate(Strict):
    name: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    examples: ExampleLines = Field(default_factory=list, description=EXAMPLES_DOC)


class DatasetUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    examples: ExampleLines | None = Field(default=None, description=EXAMPLES_DOC + " Replaces the examples.")


class FromThread(Strict):
    thread_id: str = Field(min_length=1, max_length=128)
    id: str | None = Field(default=None, description="The example's id (made from its inputs if absent)")


def validated(examples: ExampleLines) -> Examples:
    """The examples as ``loom.datasets`` validates a file's lines; a 422 naming ``examples.<i>.<field>``."""
    lines = examples.splitlines() if isinstance(examples, str) else [json.dumps(item) for item in examples]
    if len(lines) > MAX_EXAMPLES:
        raise ApiError(422, "invalid_dataset", f"examples: at most {MAX_EXAMPLES} examples")
    if not any(line.strip() for line in lines):
        return []
    try:
        parsed = parse_examples(((f"examples.{i}", line) for i, line in enumerate(lines)), "examples", "{}.{}".format)
    except DatasetError as exc:
        raise refused(exc.problems) from exc
    return [stored(example) for example in parsed]


def stored(example: Example) -> dict[str, Any]:
    """An example as a dataset line: its defaults left out."""
    return example.model_dump(mode="json", exclude_defaults=True)


def refused(problems: list[str]) -> ApiError:
    """A 422 naming the first problem's field, with every problem as ``errors[{field, message}]``."""
    errors = [dict(zip(("field", "message"), problem.split(": ", 1), strict=False)) for problem in problems]
    return ApiError(422, "invalid_dataset", problems[0], errors=errors)


@router.post("")
async def create(body: DatasetCreate, loom: Loom, caller: CurrentCaller) -> Dataset:
    """Creates a dataset of the caller's at version 1: ``name``, ``description`` and ``examples`` (a list of
    examples or JSONL text, possibly none yet). Answers the dataset with its examples as stored (an example
    without an ``id`` gets one made from its ``inputs``); 422 naming ``examples.<i>.<field>`` for a bad example."""
    examples = validated(body.examples)
    return await datasets.create(loom.sessions, caller.identity, body.name, body.description, examples)


@router.get("")
async def list_datasets(
    loom: Loom, caller: CurrentCaller, limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[DatasetSummary]:  # fmt: skip
    """The caller's datasets, most recently changed first, without their examples (their latest version's count)."""
    return await datasets.owned(loom.sessions, caller.identity, limit, offset)


@router.get("/{dataset_id}")
async def get(
    dataset_id: str, loom: Loom, caller: CurrentCaller, version: int | None = Query(None, ge=1, le=MAX_OFFSET)
) -> Dataset:
    """The dataset with its examples: the latest version's, or ``version``'s. 404 for a dataset the caller does
    not have, or a version it never had."""
    return await datasets.read(loom.sessions, dataset_id, caller.identity, version)


@router.get("/{dataset_id}/versions")
async def versions(dataset_id: str, loom: Loom, caller: CurrentCaller) -> list[DatasetVersion]:
    """Every version of the dataset, newest first, with its example count; 404 for a dataset the caller does
    not have."""
    return await datasets.versions(loom.sessions, dataset_id, caller.identity)


@router.patch("/{dataset_id}")
async def update(dataset_id: str, body: DatasetUpdate, loom: Loom, caller: CurrentCaller) -> Dataset:
    """A new version of the dataset: ``examples`` (a list or JSONL) replace the examples, ``name`` and
    ``description`` change when given; earlier versions are kept (``GET …?version=``). 404 for a dataset the
    caller does not have, 422 naming ``examples.<i>.<field>`` for a bad example."""
    examples = None if body.examples is None else validated(body.examples)

    def change(row: DatasetRow, current: Examples) -> Examples:
        row.name = body.name or row.name
        row.description = body.description if body.description is not None else row.description
        return current if examples is None else examples

    return await datasets.revise(loom.sessions, dataset_id, caller.identity, change)


@router.delete("/{dataset_id}", status_code=204)
async def delete(dataset_id: str, loom: Loom, caller: CurrentCaller) -> Response:
    """Deletes the dataset with every version; 204, 404 for a dataset the caller does not have."""
    await datasets.remove(loom.sessions, dataset_id, caller.identity)
    return Response(status_code=204)


@router.post("/{dataset_id}/examples/from-thread")
async def from_thread(dataset_id: str, body: FromThread, loom: Loom, caller: CurrentCaller) -> Dataset:
    """Adds an example made from one of the caller's threads, as a new version: ``inputs`` is the input of the
    thread's first run, ``expected.state`` the final state's short values (``loom.datasets.state_expectations``),
    for the user to correct; ``metadata`` names the thread and run. 404 for a dataset or thread the caller does
    not have or a graph no longer served; 409 for a thread without a run that had an input, or an example id
    already in the dataset."""
    await datasets.read(loom.sessions, dataset_id, caller.identity)  # a 404 before any thread is read
    thread = await caller_thread(loom, body.thread_id, caller, "read")
    first = await threads.latest_run(loom.sessions, thread.thread_id, first=True)
    if first is None or thread.graph_id is None or not first.kwargs.get("input"):
        raise ApiError(409, "thread_has_no_input", f"thread {body.thread_id!r} has no run that was given an input")
    loom.graphs.served(thread.graph_id)  # a graph no longer served is a 404, not a failure
    config: RunnableConfig = {"configurable": {"thread_id": thread.thread_id, "checkpoint_ns": ""}}
    async with loom.graph_for(thread.graph_id, "threads.read", caller.user, config) as graph:
        values = (await graph.aget_state(config)).values
    source = {"thread_id": public_thread_id(thread.thread_id), "run_id": first.run_id, "graph_id": thread.graph_id}
    line = {"inputs": first.kwargs["input"], "expected": {"state": state_expectations(values)}, "metadata": source}
    try:
        example = Example.model_validate({**line, **({"id": body.id} if body.id else {})})
    except ValidationError as exc:
        raise refused([f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from exc
    return await datasets.revise(loom.sessions, dataset_id, caller.identity, datasets.appended(stored(example)))
