"""``POST /runs/cancel``: several runs stopped at once, by ids or by status, only ever the caller's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from loom.processes import LoomServer
from tests.fixtures.servers import serving
from tests.server.live import ALICE, KEYS, assert_error, finished, open_gate, start_gated

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("bulk-cancel"), LOOM_API_KEYS=json.dumps(KEYS)) as live:
        yield live


async def gated_run(client: LangGraphClient) -> tuple[str, str]:
    thread_id = (await client.threads.create())["thread_id"]
    return thread_id, (await start_gated(client, thread_id))["run_id"]


async def test_cancel_many_by_ids_stops_those_runs_only(server: LoomServer) -> None:
    alice = get_client(url=server.url, api_key=KEYS["alice"])
    (t1, r1), (t2, r2) = await gated_run(alice), await gated_run(alice)
    await alice.runs.cancel_many(thread_id=t1, run_ids=[r1])
    assert (await finished(alice, t1, r1))["status"] == "cancelled"
    assert (await alice.runs.get(t2, r2))["status"] == "running", "a run not named runs on"
    await alice.runs.cancel_many(run_ids=[r2, r1])  # without thread_id; the ended one is left as it is
    assert (await finished(alice, t2, r2))["status"] == "cancelled"


async def test_cancel_many_by_status_stops_every_run_of_the_caller_and_no_one_elses(server: LoomServer) -> None:
    alice, bob = get_client(url=server.url, api_key=KEYS["alice"]), get_client(url=server.url, api_key=KEYS["bob"])
    (t1, r1), (t2, r2) = await gated_run(alice), await gated_run(alice)
    bobs_thread, bobs_run = await gated_run(bob)
    await alice.runs.cancel_many(status="all")
    assert (await finished(alice, t1, r1))["status"] == "cancelled"
    assert (await finished(alice, t2, r2))["status"] == "cancelled"
    assert (await bob.runs.get(bobs_thread, bobs_run))["status"] == "running"
    open_gate(server, bobs_thread)
    assert (await finished(bob, bobs_thread, bobs_run))["status"] == "success"


async def test_another_users_run_is_unknown_and_nothing_is_stopped(server: LoomServer) -> None:
    alice, bob = get_client(url=server.url, api_key=KEYS["alice"]), get_client(url=server.url, api_key=KEYS["bob"])
    mine, bobs = await gated_run(alice), await gated_run(bob)
    async with httpx.AsyncClient(base_url=server.url, headers=ALICE, timeout=30) as http:
        refused = await http.post("/runs/cancel", json={"run_ids": [mine[1], bobs[1]]})
        assert_error(refused, 404, "run_not_found")
        assert (await alice.runs.get(*mine))["status"] == "running", "none is stopped"
        assert_error(await http.post("/runs/cancel", json={}), 422)
        assert_error(await http.post("/runs/cancel", json={"status": "all", "run_ids": [mine[1]]}), 422)
        assert_error(await http.post("/runs/cancel", json={"status": "done"}), 422)
        assert_error(await http.post("/runs/cancel", json={"status": "pending"}), 404, "run_not_found")
    for client, (thread_id, run_id) in ((alice, mine), (bob, bobs)):
        open_gate(server, thread_id)
        assert (await finished(client, thread_id, run_id))["status"] == "success"
