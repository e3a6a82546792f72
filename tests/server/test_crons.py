"""Scheduled runs in the database: firings pass admission like requests, and a schedule must name a date."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.crons import fire_due, next_fire
from server.db import CronRow, RunRow, ThreadRow, now, open_database
from server.errors import ApiError


def due_cron(thread_id: str) -> CronRow:
    return CronRow(
        owner="ann", assistant_id="a", graph_id="g", thread_id=thread_id, schedule="* * * * * *",
        payload={"kwargs": {"input": {}}}, next_run_date=now() - timedelta(seconds=5),
    )  # fmt: skip


async def test_due_crons_fire_only_while_the_queue_has_room(database_url: str) -> None:
    """Five crons due, room for two more runs: two fire now, three stay due and fire once room is made."""
    engine, sessions = await open_database(database_url)
    try:
        async with sessions.begin() as session:
            session.add_all(ThreadRow(thread_id=f"t{i}", owner="ann", metadata_={}) for i in range(5))
            await session.flush()
            session.add(RunRow(thread_id="t0", owner="ann", assistant_id="a", graph_id="g", status="running"))
            session.add_all(due_cron(f"t{i}") for i in range(5))

        assert len(await fire_due(sessions, capacity=3)) == 2
        assert await fire_due(sessions, capacity=3) == []  # still full: nothing more, nothing lost
        async with sessions() as session:
            still_due = await session.scalar(select(func.count()).where(CronRow.next_run_date <= now()))
        assert still_due == 3

        async with sessions.begin() as session:  # every run finishes
            for run in (await session.scalars(select(RunRow))).all():
                run.status = "success"
        assert len(await fire_due(sessions, capacity=3)) == 3
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(RunRow)) == 6
    finally:
        await engine.dispose()


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *"])
def test_a_schedule_that_names_no_date_is_422(schedule: str) -> None:
    with pytest.raises(ApiError) as refused:
        next_fire(schedule, None, now())
    assert (refused.value.status, refused.value.code) == (422, "invalid_schedule")
    assert "never fires" in str(refused.value)
