"""Loom's tables through ``server.db``: one unit of work per transaction, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.db import ThreadRow, open_database, transaction
from server.errors import ApiError


async def test_a_transaction_commits_what_its_work_returned_and_nothing_of_a_work_that_raised(
    database_url: str,
) -> None:
    engine, sessions = await open_database(database_url)
    try:

        def create(session: Session, thread_id: str, then_fail: bool = False) -> ThreadRow:
            session.add(ThreadRow(thread_id=thread_id, owner="ann", metadata_={"n": 1}))
            session.flush()
            if then_fail:
                raise ApiError(409, "conflict", "refused after the insert")
            return session.get_one(ThreadRow, thread_id)

        kept = await transaction(sessions, lambda session: create(session, "kept"))
        assert (kept.thread_id, kept.metadata_, kept.created_at is not None) == ("kept", {"n": 1}, True)
        with pytest.raises(ApiError, match="refused after the insert"):
            await transaction(sessions, lambda session: create(session, "dropped", then_fail=True))
        async with sessions() as session:
            stored = set((await session.scalars(select(ThreadRow.thread_id))).all())
        assert stored == {"kept"}
    finally:
        await engine.dispose()


async def test_concurrent_transactions_each_see_the_others_committed_work(database_url: str) -> None:
    """Read-modify-write in a transaction never loses an update, however many run at once."""
    engine, sessions = await open_database(database_url)
    try:
        await transaction(sessions, lambda s: s.add(ThreadRow(thread_id="counter", owner="ann", metadata_={"n": 0})))

        def increment(session: Session) -> None:
            thread = session.get_one(ThreadRow, "counter", with_for_update=True)  # PostgreSQL: row lock
            thread.metadata_ = {"n": thread.metadata_["n"] + 1}

        await asyncio.gather(*(transaction(sessions, increment) for _ in range(40)))
        final = await transaction(sessions, lambda s: s.get_one(ThreadRow, "counter").metadata_["n"])
        assert final == 40
    finally:
        await engine.dispose()


async def test_async_sessions_read_every_row_through_the_one_trip_cursor(tmp_path: Path) -> None:
    """Statements through the SQLite connection answer whole results, also fetched one row or a page at a time."""
    engine, sessions = await open_database(f"sqlite:///{tmp_path}/loom.sqlite")
    try:
        async with sessions.begin() as session:
            session.add_all(ThreadRow(thread_id=f"t{n:03}", owner="ann") for n in range(150))
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ThreadRow)) == 150
            ids = (await session.scalars(select(ThreadRow.thread_id).order_by(ThreadRow.thread_id))).all()
            assert ids == [f"t{n:03}" for n in range(150)]
            result = await session.execute(text("SELECT thread_id FROM loom_threads ORDER BY thread_id"))
            assert result.fetchone() == ("t000",)
            assert [row[0] for row in result.fetchmany(3)] == ["t001", "t002", "t003"]
            assert len(result.fetchall()) == 146
            updated = await session.execute(text("UPDATE loom_threads SET status = 'busy' WHERE owner = 'ann'"))
            assert updated.rowcount == 150  # type: ignore[attr-defined]
            await session.rollback()
    finally:
        await engine.dispose()
