"""Feedback on runs (issue 25): stored with the run, listed on its read, per user, bad input named."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from loom.processes import LoomServer
from tests.fixtures.servers import serving
from tests.server.live import ALICE, BOB, KEYS

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("feedback"), LOOM_API_KEYS=json.dumps(KEYS)) as live:
        yield live


@pytest.fixture
async def alice(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=ALICE, timeout=60) as http:
        yield http


@pytest.fixture
async def bob(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=BOB, timeout=60) as http:
        yield http


async def finished_run(http: httpx.AsyncClient) -> tuple[str, str]:
    """A thread and its one finished run (the ``whoami`` fixture graph)."""
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    await http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "whoami", "input": {"request": "hi"}})
    [run] = (await http.get(f"/threads/{thread_id}/runs")).json()
    return thread_id, run["run_id"]


async def test_feedback_is_stored_and_listed_with_the_run(alice: httpx.AsyncClient) -> None:
    thread_id, run_id = await finished_run(alice)
    up = await alice.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": True, "comment": "right"})
    assert up.status_code == 200, up.text
    judged = await alice.post(f"/runs/{run_id}/feedback", json={"key": "correctness", "score": 0.5})
    assert (up.json()["score"], judged.json()["score"], judged.json()["comment"]) == (True, 0.5, None)
    listed = (await alice.get(f"/runs/{run_id}/feedback")).json()
    assert [(f["key"], f["score"], f["comment"]) for f in listed] == [
        ("thumbs", True, "right"),
        ("correctness", 0.5, None),
    ]
    run = (await alice.get(f"/threads/{thread_id}/runs/{run_id}")).json()
    assert run["feedback"] == listed
    assert "feedback" not in (await alice.get(f"/threads/{thread_id}/runs")).json()[0], "only on a run's own read"


async def test_another_users_run_is_unknown(alice: httpx.AsyncClient, bob: httpx.AsyncClient) -> None:
    _, run_id = await finished_run(alice)
    await alice.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": False})
    refused = await bob.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": True})
    assert (refused.status_code, refused.json()["code"]) == (404, "run_not_found")
    assert (await bob.get(f"/runs/{run_id}/feedback")).status_code == 404
    assert [f["score"] for f in (await alice.get(f"/runs/{run_id}/feedback")).json()] == [False]
    assert (await alice.post("/runs/no-such-run/feedback", json={"key": "k", "score": 1})).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"score": 1}, "key"),
        ({"key": "", "score": 1}, "key"),
        ({"key": "thumbs"}, "score"),
        ({"key": "thumbs", "score": "1"}, "score"),
        ({"key": "thumbs", "score": None}, "score"),
        ({"key": "thumbs", "score": 1, "comment": 3}, "comment"),
        ({"key": "thumbs", "score": 1, "value": 3}, "value"),
    ],
)
async def test_bad_feedback_is_a_422_naming_the_field(
    alice: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    _, run_id = await finished_run(alice)
    refused = await alice.post(f"/runs/{run_id}/feedback", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"].startswith(f"{field}:"), refused.json()
    assert (await alice.get(f"/runs/{run_id}/feedback")).json() == [], "nothing stored"


async def test_feedback_goes_with_its_thread(alice: httpx.AsyncClient) -> None:
    thread_id, run_id = await finished_run(alice)
    await alice.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": True})
    assert (await alice.delete(f"/threads/{thread_id}")).status_code == 204
    assert (await alice.get(f"/runs/{run_id}/feedback")).status_code == 404
