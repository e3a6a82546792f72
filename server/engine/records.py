"""Stored runs, read and removed for the routes: a thread's runs, an owner's runs by status, a finished run's
answer, its deletion (and the thread a task stores before its run).

The run, cron and task routes never run SQL themselves; what they read of the runs table is here, next to the
queue that writes it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import RunRow, RunStatus, ThreadRow, transaction
from server.engine.manager import RunManager
from server.engine.queue import UNFINISHED
from server.engine.wire import JsonText, interrupt_views, output_values
from server.errors import ApiError, not_found


async def thread_runs(
    sessions: async_sessionmaker[AsyncSession], thread_key: str, status: RunStatus | None, limit: int, offset: int
) -> list[RunRow]:
    """The runs of the stored thread ``thread_key``, newest first; only those with ``status`` if given."""
    query = select(RunRow).where(RunRow.thread_id == thread_key).order_by(RunRow.created_at.desc())
    if status:
        query = query.where(RunRow.status == status)
    async with sessions() as session:
        return list((await session.scalars(query.offset(offset).limit(limit))).all())


async def latest_run(sessions: async_sessionmaker[AsyncSession], thread_key: str) -> RunRow | None:
    """The newest run of the stored thread ``thread_key``, if it has any."""
    query = select(RunRow).where(RunRow.thread_id == thread_key).order_by(RunRow.created_at.desc()).limit(1)
    async with sessions() as session:
        run: RunRow | None = await session.scalar(query)
    return run


async def stored_output(sessions: async_sessionmaker[AsyncSession], run_id: str) -> str | None:
    """The final values a finished run stored (JSON text), whichever worker ran it; None if none were."""
    query = select(RunRow.output).where(RunRow.run_id == run_id)
    async with sessions() as session:
        output: str | None = await session.scalar(query)
    return output


async def store_thread(sessions: async_sessionmaker[AsyncSession], thread: ThreadRow) -> None:
    """Insert a new thread row (a task's), committed when this returns."""
    async with sessions.begin() as session:
        session.add(thread)


async def delete_finished(sessions: async_sessionmaker[AsyncSession], run_id: str) -> None:
    """Delete a run that has ended. Raises ApiError 409 (``run_active``) if it is queued or running."""

    def remove(session: Any) -> int:
        removed = session.connection().execute(
            delete(RunRow).where(RunRow.run_id == run_id, RunRow.status.not_in(UNFINISHED))
        )
        return int(getattr(removed, "rowcount", 0) or 0)

    if not await transaction(sessions, remove):
        raise ApiError(409, "run_active", "cancel the run before deleting it")


async def final_answer(manager: RunManager, run_id: str, status: str | None = None) -> Any:
    """What ``/wait`` and ``/join`` answer once the run has ended: its final state values, or
    ``{"__error__": …}`` as langgraph-api answers.

    Args:
        manager: the run manager (its waiters, its database, its graphs).
        run_id: the run.
        status: the run's status when the caller has it (saves a query).

    Returns:
        The stored values as ``JsonText`` (already JSON), or values for the route to encode.

    Read from the run's row, whichever process executed it: the values were stored there, as JSON, with its
    outcome (when this process executed it, it kept that outcome for its own waiter).
    """
    await manager.wait(run_id, status)
    recorded = manager.take_recorded(run_id)  # it ran here: what it committed is what the row would answer
    if recorded is not None and (answer := _answer(recorded.status, recorded.error, recorded.output)) is not None:
        return answer
    ended = select(RunRow.status, RunRow.error, RunRow.output, RunRow.thread_id, RunRow.graph_id, RunRow.kwargs)
    run = await transaction(
        manager.sessions,
        lambda session: session.connection().execute(ended.where(RunRow.run_id == run_id)).first(),
    )
    if run is None:
        raise not_found("run", run_id)
    if (answer := _answer(run.status, run.error, run.output)) is not None:
        return answer
    if run.thread_id is None or run.kwargs.get("ephemeral"):
        return {}
    graph = manager.graphs[run.graph_id]
    state = await graph.aget_state({"configurable": {"thread_id": run.thread_id}})
    return output_values(graph, state.values, interrupt_views(state.interrupts))


def _answer(status: str, error: dict[str, Any] | None, output: str | None) -> Any:
    """What an ended run's outcome answers by itself (its error, or its stored values); None if neither."""
    if status in ("error", "timeout"):
        return {"__error__": error or {"error": status, "message": status}}
    return JsonText(output) if output is not None else None


async def owners_runs(
    sessions: async_sessionmaker[AsyncSession], owner: str, statuses: tuple[RunStatus, ...]
) -> list[RunRow]:
    """``owner``'s runs whose status is one of ``statuses``, oldest first."""
    query = select(RunRow).where(RunRow.owner == owner, RunRow.status.in_(statuses)).order_by(RunRow.created_at)
    async with sessions() as session:
        return list((await session.scalars(query)).all())
