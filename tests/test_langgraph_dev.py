"""LangGraph Studio's path: `langgraph dev` reads langgraph.json and serves every graph.

Every bundled graph runs one seed request end to end under `langgraph dev`, on ``openai:`` models
answered by the scripted OpenAI-compatible server. `langgraph dev` fails a run that makes a blocking
call on its event loop (blockbuster), so these runs also prove the graphs' async nodes never block.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import LanggraphDev
from tests.fixtures.openai_server import (
    Reply,
    ScriptedOpenAI,
    call,
    last_is_tool,
    schema_named,
    structured,
    system_says,
    text,
    tools_offered,
)
from tests.graphs.team_scripts import GOAL, served_research_and_article

pytestmark = pytest.mark.live

CODE = "def compound(principal, rate, years):\n    return principal * (1 + rate) ** years\n"
TESTS = "def test_compound():\n    assert round(compound(100, 0.1, 2), 2) == 121.0\n"


@pytest.fixture(scope="module")
def model_server() -> Iterator[ScriptedOpenAI]:
    server = ScriptedOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def langgraph_dev(tmp_path_factory: pytest.TempPathFactory, model_server: ScriptedOpenAI) -> Iterator[str]:
    """``langgraph dev`` on the project's own ``langgraph.json``, as Studio users start it."""
    workdir = tmp_path_factory.mktemp("langgraph-dev")
    server = LanggraphDev(workdir, env={**model_server.env, "LOOM_DATA_DIR": str(workdir / "data")}).start()
    try:
        yield server.url
    finally:
        server.stop()


SEEDS: dict[str, tuple[str, list[Reply]]] = {
    "assistant": (
        "What meetings do I have this week?",
        [text("Here are your meetings this week.", when=last_is_tool)],
    ),
    "plan_execute": (
        "Find round sunglasses that are in stock",
        [text("Lennon Round Classic is in stock.", when=system_says("You answer the user's request"))],
    ),
    "supervisor": (
        GOAL,
        [
            structured({"next": "researcher", "task": "Find passages", "pass_through": None}, schema_named("Decision")),
            structured({"next": "writer", "task": "Write it", "pass_through": None}, schema_named("Decision")),
            structured({"next": "finish", "task": None, "pass_through": "writer"}, schema_named("Decision")),
            *served_research_and_article(),
        ],
    ),
    "pipeline": (
        GOAL,
        [
            *served_research_and_article(),
            structured(
                {"answers_goal": True, "claims_supported": True, "clear_structure": True, "specific": True},
                schema_named("ArticleJudgement"),
            ),
        ],
    ),
    "code_reflection": (
        "Write compound(principal, rate, years), compound interest",
        [structured({"code": CODE, "tests": TESTS}, schema_named("CodeDraft"))],
    ),
    "support": (
        "I was charged twice for my subscription this month",
        [
            call("list_invoices", {}, when=tools_offered("list_invoices")),
            text("Your invoices are listed above; one looks duplicated.", when=last_is_tool),
        ],
    ),
}


@pytest.mark.parametrize("graph_id", list(SEEDS))
async def test_every_graph_runs_its_seed_request_under_langgraph_dev(
    langgraph_dev: str, model_server: ScriptedOpenAI, graph_id: str
) -> None:
    request, script = SEEDS[graph_id]
    model_server.reset()
    model_server.add(*script)
    client = get_client(url=langgraph_dev)
    thread = await client.threads.create()
    await client.runs.wait(
        thread["thread_id"],
        graph_id,
        input={"messages": [{"role": "user", "content": request}]},
        context={"user_id": "demo"},
        raise_error=False,
    )
    [run] = await client.runs.list(thread["thread_id"])
    state = await client.threads.get_state(thread["thread_id"])
    assert run["status"] == "success", json.dumps(state["values"], default=str)[-3000:]
    assert not model_server.unused and not model_server.rejected
    messages = state["values"]["messages"]
    assert messages[-1]["type"] == "ai" and messages[-1]["content"]
    if graph_id == "assistant":
        tool_messages = [m for m in messages if m["type"] == "tool"]
        assert tool_messages and tool_messages[0]["name"] == "search_calendar"


async def test_a_chart_link_in_a_reply_serves_the_png_under_langgraph_dev(
    langgraph_dev: str, model_server: ScriptedOpenAI
) -> None:
    model_server.reset()
    model_server.add(text("Q2 was the best quarter.", when=last_is_tool))
    client = get_client(url=langgraph_dev)
    thread = await client.threads.create()
    ask = {"messages": [{"role": "user", "content": "Create a chart from this data: Q1 120, Q2 150, Q3 90"}]}
    await client.runs.wait(thread["thread_id"], "assistant", input=ask, context={"user_id": "demo"})
    (chart,) = (await client.threads.get_state(thread["thread_id"]))["values"]["artifacts"]
    assert chart["url"] == f"/threads/{thread['thread_id']}/artifacts/{chart['name']}"
    async with httpx.AsyncClient(base_url=langgraph_dev) as http:
        served = await http.get(chart["url"])
        missing = await http.get(f"/threads/{thread['thread_id']}/artifacts/..%2Fsecrets")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content.startswith(b"\x89PNG")
    assert missing.status_code == 404
