"""Evaluation datasets over HTTP (issue 25): created, listed, read, versioned, made from a stored thread; per user."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from loom.datasets import load_dataset

pytestmark = pytest.mark.live

ROUTING = [
    {"id": "chart", "inputs": "Plot Q1 120, Q2 150", "expected": {"nodes": ["analyst"], "contains": ["Q2"]}},
    {"inputs": {"messages": [{"role": "user", "content": "hi"}]}, "rubric": ["greets back"]},
]


async def new_dataset(http: httpx.AsyncClient, name: str, examples: list[dict[str, object]]) -> str:
    created = await http.post("/evals/datasets", json={"name": name, "examples": examples})
    assert created.status_code == 200, created.text
    return str(created.json()["dataset_id"])


async def test_a_dataset_is_stored_as_the_cli_reads_its_file(alice_http: httpx.AsyncClient, tmp_path: Path) -> None:
    created = await alice_http.post("/evals/datasets", json={"name": "routing", "examples": ROUTING})
    assert created.status_code == 200, created.text
    dataset = created.json()
    assert (dataset["name"], dataset["version"], dataset["example_count"]) == ("routing", 1, 2)
    file, text = tmp_path / "routing.jsonl", "".join(json.dumps(line) + "\n" for line in ROUTING)
    await asyncio.to_thread(file.write_text, text)
    from_file = [e.model_dump(mode="json", exclude_defaults=True) for e in await asyncio.to_thread(load_dataset, file)]
    assert dataset["examples"] == from_file, "the same examples, ids made the same way"
    jsonl = await alice_http.post("/evals/datasets", json={"name": "as text", "examples": text})
    assert jsonl.json()["examples"] == from_file
    assert (await alice_http.get(f"/evals/datasets/{dataset['dataset_id']}")).json() == dataset
    listed = {d["dataset_id"]: d for d in (await alice_http.get("/evals/datasets")).json()}
    assert listed[dataset["dataset_id"]]["example_count"] == 2 and "examples" not in listed[dataset["dataset_id"]]


async def test_an_update_is_a_new_version_and_the_old_one_is_kept(alice_http: httpx.AsyncClient) -> None:
    path = f"/evals/datasets/{await new_dataset(alice_http, 'v', ROUTING)}"
    updated = (await alice_http.patch(path, json={"examples": ROUTING[:1], "name": "v2"})).json()
    assert (updated["version"], updated["name"], updated["example_count"]) == (2, "v2", 1)
    renamed = (await alice_http.patch(path, json={"description": "d"})).json()
    assert (renamed["version"], renamed["examples"], renamed["description"]) == (3, updated["examples"], "d")
    first = (await alice_http.get(path, params={"version": 1})).json()
    assert (first["version"], first["example_count"]) == (1, 2)
    versions = (await alice_http.get(f"{path}/versions")).json()
    assert [(v["version"], v["example_count"]) for v in versions] == [(3, 1), (2, 1), (1, 2)]
    assert (await alice_http.get(path, params={"version": 9})).status_code == 404


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        ([ROUTING[0], {"inputs": ""}], "examples.1.inputs: must be the user's message"),
        ([{"inputs": "x", "expected": {"nodes": "tool"}}], "examples.0.expected.nodes: Input should be a valid list"),
        ([{"inputs": "x", "expected": {"hue": "red"}}], "examples.0.expected.hue: Extra inputs are not permitted"),
        ([ROUTING[0], ROUTING[0]], "examples.1.id: duplicate id 'chart' (first at examples.0)"),
        ([3], "examples.0.json: an example is one JSON object, not int"),
        ('{"inputs": "a"}\n\n{"inputs": ', "examples.2.json: Expecting value at column 12"),
        ('{"inputs": {"x": NaN}}', "examples.0.json: NaN is not JSON"),
    ],
)
async def test_a_bad_example_is_a_422_naming_it(alice_http: httpx.AsyncClient, examples: object, message: str) -> None:
    refused = await alice_http.post("/evals/datasets", json={"name": "bad", "examples": examples})
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_dataset"), refused.text
    assert refused.json()["detail"].startswith(message), refused.json()
    assert refused.json()["errors"][0]["field"] == message.split(":")[0]
    assert all(d["name"] != "bad" for d in (await alice_http.get("/evals/datasets")).json()), "nothing stored"


async def test_another_users_dataset_is_unknown(alice_http: httpx.AsyncClient, bob_http: httpx.AsyncClient) -> None:
    dataset_id = await new_dataset(alice_http, "mine", ROUTING)
    for method, path, body in [
        ("GET", "", None), ("GET", "/versions", None), ("PATCH", "", {"name": "theirs"}), ("DELETE", "", None),
        ("POST", "/examples/from-thread", {"thread_id": "t"}),
    ]:  # fmt: skip
        answer = await bob_http.request(method, f"/evals/datasets/{dataset_id}{path}", json=body)
        assert (answer.status_code, answer.json()["code"]) == (404, "dataset_not_found"), (method, path)
    assert dataset_id not in {d["dataset_id"] for d in (await bob_http.get("/evals/datasets")).json()}
    assert (await alice_http.get(f"/evals/datasets/{dataset_id}")).json()["name"] == "mine"
    assert (await alice_http.delete(f"/evals/datasets/{dataset_id}")).status_code == 204
    assert (await alice_http.get(f"/evals/datasets/{dataset_id}")).status_code == 404


async def test_an_example_is_made_from_a_stored_thread(
    alice_http: httpx.AsyncClient, bob_http: httpx.AsyncClient
) -> None:
    made_from = f"/evals/datasets/{await new_dataset(alice_http, 'from threads', [])}/examples/from-thread"
    thread_id = (await alice_http.post("/threads", json={})).json()["thread_id"]
    for request in ("hi", "again"):
        run = {"assistant_id": "whoami", "input": {"request": request}}
        await alice_http.post(f"/threads/{thread_id}/runs/wait", json=run)
    [_, first] = (await alice_http.get(f"/threads/{thread_id}/runs")).json()
    made = await alice_http.post(made_from, json={"thread_id": thread_id})
    assert made.status_code == 200, made.text
    [example] = made.json()["examples"]
    assert made.json()["version"] == 2
    assert example["inputs"] == {"request": "hi"}, "the thread's first input"
    assert example["expected"] == {"state": {"request": "again", "user_id": "alice"}}, "its final state, lists left out"
    assert example["metadata"] == {"thread_id": thread_id, "run_id": first["run_id"], "graph_id": "whoami"}
    again = await alice_http.post(made_from, json={"thread_id": thread_id})
    assert (again.status_code, again.json()["code"]) == (409, "example_exists")
    assert (await alice_http.post(made_from, json={"thread_id": thread_id, "id": "whoami-2"})).json()["version"] == 3
    bobs = f"/evals/datasets/{await new_dataset(bob_http, 'theirs', [])}/examples/from-thread"
    refused = await bob_http.post(bobs, json={"thread_id": thread_id})
    assert (refused.status_code, refused.json()["code"]) == (404, "thread_not_found")
    empty = (await alice_http.post("/threads", json={})).json()["thread_id"]
    idle = await alice_http.post(made_from, json={"thread_id": empty})
    assert (idle.status_code, idle.json()["code"]) == (409, "thread_has_no_input")
