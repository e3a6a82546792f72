"""Feedback on runs (issue 25): stored with the run, listed on its read, per user, bad input named."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.live


async def finished_run(http: httpx.AsyncClient) -> tuple[str, str]:
    """A thread and its one finished run (the ``whoami`` fixture graph)."""
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    await http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "whoami", "input": {"request": "hi"}})
    [run] = (await http.get(f"/threads/{thread_id}/runs")).json()
    return thread_id, run["run_id"]


async def test_feedback_is_stored_and_listed_with_the_run(alice_http: httpx.AsyncClient) -> None:
    thread_id, run_id = await finished_run(alice_http)
    up = await alice_http.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": True, "comment": "right"})
    assert up.status_code == 200, up.text
    judged = await alice_http.post(f"/runs/{run_id}/feedback", json={"key": "correctness", "score": 0.5})
    assert (up.json()["score"], judged.json()["score"], judged.json()["comment"]) == (True, 0.5, None)
    listed = (await alice_http.get(f"/runs/{run_id}/feedback")).json()
    assert [(f["key"], f["score"], f["comment"]) for f in listed] == [
        ("thumbs", True, "right"),
        ("correctness", 0.5, None),
    ]
    run = (await alice_http.get(f"/threads/{thread_id}/runs/{run_id}")).json()
    assert run["feedback"] == listed
    assert "feedback" not in (await alice_http.get(f"/threads/{thread_id}/runs")).json()[0], "only on a run's own read"


async def test_another_users_run_is_unknown(alice_http: httpx.AsyncClient, bob_http: httpx.AsyncClient) -> None:
    _, run_id = await finished_run(alice_http)
    await alice_http.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": False})
    refused = await bob_http.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": True})
    assert (refused.status_code, refused.json()["code"]) == (404, "run_not_found")
    assert (await bob_http.get(f"/runs/{run_id}/feedback")).status_code == 404
    assert [f["score"] for f in (await alice_http.get(f"/runs/{run_id}/feedback")).json()] == [False]
    assert (await alice_http.post("/runs/no-such-run/feedback", json={"key": "k", "score": 1})).status_code == 404


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
    alice_http: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    _, run_id = await finished_run(alice_http)
    refused = await alice_http.post(f"/runs/{run_id}/feedback", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"].startswith(f"{field}:"), refused.json()
    assert (await alice_http.get(f"/runs/{run_id}/feedback")).json() == [], "nothing stored"


async def test_feedback_goes_with_its_thread(alice_http: httpx.AsyncClient) -> None:
    thread_id, run_id = await finished_run(alice_http)
    await alice_http.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": True})
    assert (await alice_http.delete(f"/threads/{thread_id}")).status_code == 204
    assert (await alice_http.get(f"/runs/{run_id}/feedback")).status_code == 404
