"""Request bodies are strict JSON within limits: what is kept is kept whole, what is not is a 400 or 422."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.server.live import assert_error

pytestmark = pytest.mark.live


async def test_a_surrogate_pair_is_a_character(alice_http: httpx.AsyncClient) -> None:
    body = '{"metadata": {"emoji": "\\ud83e\\uddf5"}}'
    answer = await alice_http.post("/threads", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"]["emoji"] == "\N{SPOOL OF THREAD}"


async def test_nesting_up_to_the_limit_is_kept_whole(alice_http: httpx.AsyncClient) -> None:
    deepest = '{"metadata": {"a": %s}}' % ("[" * 98 + "]" * 98)  # 100 levels with the two objects around it
    answer = await alice_http.post("/threads", content=deepest, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"]["a"] == json.loads(deepest)["metadata"]["a"]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ('{"metadata": {"a": NaN}}', 400, "malformed_json"),
        ('{"metadata": {"a": Infinity}}', 400, "malformed_json"),
        ('{"metadata": {"a": [-Infinity]}}', 400, "malformed_json"),
        ('{"metadata": {"a": 1e999}}', 422, "invalid_number"),
        ('{"metadata": {"a": -1e400}}', 422, "invalid_number"),
        ('{"metadata": {"a": 99999999999999999999}}', 422, "invalid_number"),
        ('{"metadata": {"a": "\\udbeb"}}', 400, "malformed_json"),  # unpaired surrogate (found by the fuzzer)
        ('{"metadata": {"a": "\\udd45\\udbeb"}}', 400, "malformed_json"),  # both halves, wrong order
        ('{"metadata": {"a": %s}}' % ("[" * 99 + "]" * 99), 400, "malformed_json"),  # 101 levels, over the limit
        ('{"metadata": {"a": %s}}' % ("[" * 300 + "]" * 300), 400, "malformed_json"),  # pydantic failed: a 500
        ('{"metadata": {"a": %s}}' % ("[" * 100_000 + "]" * 100_000), 400, "malformed_json"),  # json's own limit
    ],
)
async def test_json_is_strict(alice_http: httpx.AsyncClient, raw: str, status: int, code: str) -> None:
    marker = f"strict-{status}-{code}-{len(raw)}"
    body = raw.replace('{"a"', f'{{"marker": "{marker}", "a"')
    answer = await alice_http.post("/threads", content=body, headers={"content-type": "application/json"})
    assert_error(answer, status, code)
    assert (await alice_http.post("/threads/search", json={"metadata": {"marker": marker}})).json() == []
