"""Scheduled runs: firings pass admission like requests and carry their thread's metadata; each cron can fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from loom.processes import LoomServer
from server.db import CronRow, RunRow, ThreadRow, now, open_database
from server.engine.crons import fire_due, next_fire
from server.errors import ApiError
from tests.server.live import ALICE, BOB, assert_error


def due_cron(thread_id: str) -> CronRow:
    """Due now; once fired, not due again before next year (an every-second schedule made the counts depend on
    how fast the machine ran the test)."""
    return CronRow(
        owner="ann", assistant_id="a", graph_id="g", thread_id=thread_id, schedule="0 0 1 1 *",
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


async def test_a_user_at_their_share_waits_while_others_crons_fire(database_url: str) -> None:
    """``per_user``: ann has a run going and a share of one, so her due cron waits; bo's fires."""
    engine, sessions = await open_database(database_url)
    try:
        async with sessions.begin() as session:
            session.add_all([ThreadRow(thread_id="t0", owner="ann"), ThreadRow(thread_id="t1", owner="bo")])
            await session.flush()
            session.add(RunRow(thread_id="t0", owner="ann", assistant_id="a", graph_id="g", status="running"))
            session.add_all([due_cron("t0"), due_cron("t1")])
            await session.flush()
            (await session.scalars(select(CronRow).where(CronRow.thread_id == "t1"))).one().owner = "bo"

        [fired] = await fire_due(sessions, capacity=10, per_user=1)
        async with sessions() as session:
            assert (await session.get_one(RunRow, fired)).owner == "bo"
            waiting = await session.scalar(select(CronRow).where(CronRow.next_run_date <= now()))
        assert waiting is not None and waiting.owner == "ann"
    finally:
        await engine.dispose()


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *"])
def test_a_schedule_that_names_no_date_is_422(schedule: str) -> None:
    with pytest.raises(ApiError) as refused:
        next_fire(schedule, None, now())
    assert (refused.value.status, refused.value.code) == (422, "invalid_schedule")
    assert "never fires" in str(refused.value)


async def test_a_fired_run_carries_its_thread_s_and_cron_s_metadata(database_url: str) -> None:
    """As a requested run: the thread's tags, then the cron's, reach the run and the graph's config metadata."""
    engine, sessions = await open_database(database_url)
    try:
        async with sessions.begin() as session:
            session.add(ThreadRow(thread_id="t", owner="ann", metadata_={"tenant": "acme", "channel": "email"}))
            await session.flush()
            cron = due_cron("t")
            cron.metadata_ = {"channel": "cron", "assistant_id": "spoofed"}
            session.add(cron)
        [run_id] = await fire_due(sessions, capacity=3)
        async with sessions() as session:
            run = await session.get_one(RunRow, run_id)
        assert run.metadata_ == run.kwargs["metadata"]
        assert {key: run.metadata_[key] for key in ("tenant", "channel", "cron_id", "assistant_id")} == {
            "tenant": "acme", "channel": "cron", "cron_id": cron.cron_id, "assistant_id": "a",
        }  # fmt: skip
    finally:
        await engine.dispose()


@pytest.mark.parametrize("end_time", ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00"])
async def test_a_cron_that_ends_before_its_first_firing_is_422(server: LoomServer, end_time: str) -> None:
    """It would never fire; a naive end_time is read as UTC (it used to be a 500 beside the zoned first date)."""
    cron = {"assistant_id": "approval", "schedule": "0 0 * * *", "end_time": end_time}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        refused = await http.post("/runs/crons", json=cron)
        later = (datetime.now(UTC) + timedelta(days=30)).replace(tzinfo=None).isoformat()
        accepted = await http.post("/runs/crons", json={**cron, "end_time": later})
        listed = (await http.post("/runs/crons/search", json={"limit": 1000})).json()
        if accepted.status_code == 200:
            await http.delete(f"/runs/crons/{accepted.json()['cron_id']}")
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"].startswith("end_time: ")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["end_time"].endswith(("+00:00", "Z"))
    assert [c["cron_id"] for c in listed].count(accepted.json()["cron_id"]) == 1
    assert all(c["end_time"] != "2020-01-01T00:00:00+00:00" for c in listed)


async def test_a_cron_is_read_and_patched_by_its_owner_only(keyed_server: LoomServer) -> None:
    cron = {"assistant_id": "approval", "schedule": "0 0 1 1 *", "metadata": {"team": "a"}}
    async with (
        httpx.AsyncClient(base_url=keyed_server.url, headers=ALICE, timeout=30) as alice,
        httpx.AsyncClient(base_url=keyed_server.url, headers=BOB, timeout=30) as bob,
    ):
        made = (await alice.post("/runs/crons", json=cron)).json()
        path = f"/runs/crons/{made['cron_id']}"
        try:
            assert (await alice.get(path)).json() == made
            assert_error(await bob.get(path), 404, "cron_not_found")
            assert_error(await bob.patch(path, json={"enabled": False}), 404, "cron_not_found")
            patched = await alice.patch(path, json={"schedule": "0 0 1 7 *", "metadata": {"owner": "alice"}})
            assert patched.status_code == 200, patched.text
            assert patched.json()["schedule"] == "0 0 1 7 *"
            assert patched.json()["metadata"] == {"team": "a", "owner": "alice"}
            assert datetime.fromisoformat(patched.json()["next_run_date"]).month == 7
            disabled = (await alice.patch(path, json={"enabled": False})).json()
            assert disabled["enabled"] is False and disabled["next_run_date"] is None
            assert (await alice.get(path)).json() == disabled
            assert_error(await alice.patch(path, json={"input": {"request": "x"}}), 422)
            assert_error(await alice.patch(path, json={"schedule": "not a schedule"}), 422)
            ended = await alice.patch(path, json={"enabled": True, "end_time": "2020-01-01T00:00:00Z"})
            assert_error(ended, 422, "invalid_cron")
        finally:
            await alice.delete(path)
