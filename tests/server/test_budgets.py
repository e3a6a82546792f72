"""Cost and budgets on a live server: a run past its USD budget stops before its next node, with its
checkpoint intact, and a run with a larger budget finishes it without running any node twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import PROJECT_ROOT, LoomServer
from loom.settings import Settings
from tests.fixtures.openai_server import ScriptedOpenAI, text
from tests.fixtures.servers import serving

BUDGET_GRAPHS = PROJECT_ROOT / "tests" / "server" / "langgraph.budget.json"
MINI = "openai:gpt-4o-mini"


@pytest.fixture
def priced_server(tmp_path: Path, openai_server: ScriptedOpenAI) -> Iterator[LoomServer]:
    """Every role on the scripted OpenAI-compatible server (``openai:gpt-4o-mini``), serving ``priced``."""
    with serving(
        tmp_path / "server", fixtures=False, LOOM_GRAPHS_CONFIG=str(BUDGET_GRAPHS), **openai_server.env
    ) as server:
        yield server


def counts(server: LoomServer, thread_id: str) -> dict[str, int]:
    """Node executions the graph counted; it names files by ``configurable.thread_id``, the owner-scoped key."""
    folder = server.data_dir / "counts"
    return {node: sum(int(f.read_text() or 0) for f in folder.glob(f"{thread_id}~*.{node}"))
            for node in ("draft", "review", "publish")}  # fmt: skip


def expected_cost(requests: list[dict[str, Any]], replies: list[str]) -> float:
    """What the scripted server's usage (words as tokens) costs at gpt-4o-mini's price."""
    price = Settings().price_of(MINI)
    assert price is not None
    prompt = sum(len(str(m["content"]).split()) for body in requests for m in body["messages"])
    output = sum(len(reply.split()) for reply in replies)
    return (prompt * price.input + output * price.output) / 1_000_000


async def test_a_tiny_usd_budget_stops_the_run_and_a_larger_one_resumes_it(
    priced_server: LoomServer, openai_server: ScriptedOpenAI
) -> None:
    replies = ["a first draft of twenty words " * 4, "looks right to me", "published"]
    openai_server.add(*(text(reply) for reply in replies))
    client = get_client(url=priced_server.url)
    thread_id = (await client.threads.create())["thread_id"]
    tiny = {"budget": {"max_usd": 0.000001}}
    parts = [p async for p in client.runs.stream(thread_id, "priced", input={"topic": "cost", "log": []}, context=tiny)]
    (stopped,) = await client.runs.list(thread_id)
    state = await client.threads.get_state(thread_id)
    after_stop = counts(priced_server, thread_id)

    error = next(p.data for p in parts if p.event == "error")
    first_cost = expected_cost(openai_server.requests, replies[:1])
    assert error["error"] == "budget_exceeded" and error["limit"] == "usd" and error["scope"] == "run"
    assert error["allowed"] == 0.000001 and error["spent"] == pytest.approx(first_cost)
    assert parts[-1].event == "end" and parts[-1].data["status"] == "error"
    assert stopped["status"] == "error" and stopped["error"] == error
    assert (await client.threads.get(thread_id))["status"] == "error"
    assert after_stop == {"draft": 1, "review": 0, "publish": 0}  # refused before review's body ran
    assert state["next"] == ["review"] and len(state["values"]["log"]) == 1  # draft's step is checkpointed
    assert "budget" in state["tasks"][0]["error"]  # the thread's state names why review did not run
    usage = stopped["usage"]
    assert usage["model_calls"] == 1 and set(usage["by_node"]) == {"draft"} and set(usage["by_model"]) == {MINI}
    assert usage["cost_usd"] == pytest.approx(first_cost) and usage["unpriced_models"] == []

    final = await client.runs.wait(thread_id, "priced", input=None, context={"budget": {"max_usd": 1.0}})
    runs = await client.runs.list(thread_id)
    async with httpx.AsyncClient(base_url=priced_server.url) as http:
        thread_usage = (await http.get(f"/threads/{thread_id}/usage")).json()
        missing = await http.get("/threads/no-such-thread/usage")

    assert [line.split(":")[0] for line in final["log"]] == ["draft", "review", "publish"]
    assert counts(priced_server, thread_id) == {"draft": 1, "review": 1, "publish": 1}
    assert len(openai_server.requests) == 3 and not openai_server.unused  # one model call per node, no repeat
    assert [run["status"] for run in runs] == ["success", "error"]
    assert set(runs[0]["usage"]["by_node"]) == {"review", "publish"}
    assert thread_usage["runs"] == 2 and thread_usage["model_calls"] == 3
    assert {node: t["model_calls"] for node, t in thread_usage["by_node"].items()} == {
        "draft": 1, "review": 1, "publish": 1
    }  # fmt: skip
    assert thread_usage["cost_usd"] == pytest.approx(expected_cost(openai_server.requests, replies))
    assert thread_usage["by_model"][MINI]["total_tokens"] == thread_usage["total_tokens"] > 0
    assert missing.status_code == 404 and missing.json()["code"] == "thread_not_found"


async def test_token_and_call_limits_and_bad_budgets(priced_server: LoomServer, openai_server: ScriptedOpenAI) -> None:
    openai_server.add(text("one two three", repeat=True))
    client = get_client(url=priced_server.url)
    thread_id = (await client.threads.create())["thread_id"]
    once = {"budget": {"max_model_calls": 1}, "audience": "ops"}
    result = await client.runs.wait(
        thread_id, "priced", input={"topic": "calls", "log": []}, context=once, raise_error=False
    )
    assert result["__error__"]["limit"] == "model_calls"
    assert (result["__error__"]["spent"], result["__error__"]["allowed"]) == (1, 1)
    assert counts(priced_server, thread_id) == {"draft": 1, "review": 0, "publish": 0}
    tokens = (await client.threads.create())["thread_id"]
    few = {"budget": {"max_tokens": 5}}
    result = await client.runs.wait(tokens, "priced", input={"topic": "x", "log": []}, context=few, raise_error=False)
    (run,) = await client.runs.list(tokens)
    assert result["__error__"]["limit"] == "tokens" and result["__error__"]["allowed"] == 5
    assert result["__error__"]["spent"] == run["usage"]["total_tokens"] > 5
    assert counts(priced_server, tokens) == {"draft": 1, "review": 0, "publish": 0}

    async with httpx.AsyncClient(base_url=priced_server.url) as http:
        for budget, field in [
            ({"max_usd": -1}, "context.budget.max_usd"),
            ({"max_tokens": "10"}, "context.budget.max_tokens"),
            ({"max_model_calls": True}, "context.budget.max_model_calls"),
            ({"max_dollars": 1}, "context.budget.max_dollars"),
        ]:
            body = {"assistant_id": "priced", "input": {"topic": "x", "log": []}, "context": {"budget": budget}}
            answer = await http.post(f"/threads/{thread_id}/runs", json=body)
            assert answer.status_code == 422 and answer.json()["detail"].startswith(field), answer.text


@pytest.fixture
def ceiling_server(tmp_path: Path, openai_server: ScriptedOpenAI) -> Iterator[LoomServer]:
    """Two users; carol may make two model calls a day; the review step runs on a model without a price."""
    env = {
        **openai_server.env,
        "LOOM_GRAPHS_CONFIG": str(BUDGET_GRAPHS),
        "LOOM_API_KEYS": json.dumps({"dave": "key-dave", "carol": "key-carol"}),
        "LOOM_USER_DAILY_BUDGETS": json.dumps({"carol": {"max_model_calls": 2}}),
        "LOOM_MODELS__REVIEW": "openai:unpriced-model",
    }
    with serving(tmp_path / "server", fixtures=False, **env) as server:
        yield server


async def test_a_model_without_a_price_has_unknown_cost_and_stops_a_usd_budget(
    ceiling_server: LoomServer, openai_server: ScriptedOpenAI
) -> None:
    openai_server.add(text("one two three", repeat=True))
    client = get_client(url=ceiling_server.url, api_key="key-dave")
    thread_id = (await client.threads.create())["thread_id"]
    generous = {"budget": {"max_usd": 1.0}}
    result = await client.runs.wait(thread_id, "priced", input={"topic": "x", "log": []}, context=generous,
                                    raise_error=False)  # fmt: skip
    (run,) = await client.runs.list(thread_id)

    unpriced = "openai:unpriced-model"
    assert result["__error__"]["limit"] == "usd" and result["__error__"]["spent"] is None
    assert result["__error__"]["unpriced_models"] == [unpriced]
    assert counts(ceiling_server, thread_id) == {"draft": 1, "review": 1, "publish": 0}
    usage = run["usage"]
    assert usage["cost_usd"] is None and usage["unpriced_models"] == [unpriced]
    assert usage["by_model"][unpriced]["cost_usd"] is None and usage["by_model"][MINI]["cost_usd"] > 0
    assert usage["by_node"]["draft"]["cost_usd"] > 0 and usage["by_node"]["review"]["cost_usd"] is None


async def test_a_users_daily_budget_counts_every_run_of_the_day(
    ceiling_server: LoomServer, openai_server: ScriptedOpenAI
) -> None:
    openai_server.add(text("one two three", repeat=True))
    carol = get_client(url=ceiling_server.url, api_key="key-carol")
    first, second = [(await carol.threads.create())["thread_id"] for _ in range(2)]
    stopped = await carol.runs.wait(first, "priced", input={"topic": "x", "log": []}, raise_error=False)
    refused = await carol.runs.wait(second, "priced", input={"topic": "x", "log": []}, raise_error=False)
    dave = get_client(url=ceiling_server.url, api_key="key-dave")
    other = (await dave.threads.create())["thread_id"]
    unlimited = await dave.runs.wait(other, "priced", input={"topic": "x", "log": []})

    assert {k: stopped["__error__"][k] for k in ("limit", "scope", "spent", "allowed")} == {
        "limit": "model_calls", "scope": "user_day", "spent": 2, "allowed": 2
    }  # fmt: skip
    assert counts(ceiling_server, first) == {"draft": 1, "review": 1, "publish": 0}
    assert refused["__error__"]["spent"] == 2 and counts(ceiling_server, second)["draft"] == 0
    assert len(unlimited["log"]) == 3  # another user's day is their own


async def test_loom_graphs_on_a_fake_model_cost_zero(live_server: LoomServer) -> None:
    client = get_client(url=live_server.url)
    thread_id = (await client.threads.create())["thread_id"]
    message = {"messages": [{"role": "user", "content": "Write a blog on Generative AI in Manufacturing"}]}
    await client.runs.wait(thread_id, "assistant", input=message)
    thread_usage = await client.http.get(f"/threads/{thread_id}/usage")
    assert thread_usage["model_calls"] >= 1 and thread_usage["total_tokens"] > 0
    assert thread_usage["cost_usd"] == 0.0 and thread_usage["unpriced_models"] == []
    assert all(model.startswith("fake:") for model in thread_usage["by_model"])
    state = await client.threads.get_state(thread_id)
    assert all(record["cost_usd"] == 0.0 for record in state["values"]["usage"])
