"""Outcomes say what happened (issue 24), on a live server with Loom's own graphs.

A plan that could not be made ends ``error``, not ``success``; on the embedded model a refund it cannot ask
for is said not done, naming what to configure, instead of invented facts; a support request's state shows
the thread id its client chose.

The server's billing specialist runs on the embedded model (``local:``), but no test here needs the model
loaded: what is tested happens before any call to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from loom.processes import LoomServer
from nodes.support.agents import CONFIGURE_A_MODEL
from tests.fixtures.servers import serving
from tests.server.live import assert_error

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    data = tmp_path_factory.mktemp("outcomes")
    with serving(data, fixtures=False, LOOM_MODELS__BILLING="local:smollm2") as live:
        yield live


@pytest.fixture
async def http(server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


def said(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def test_a_plan_that_could_not_be_made_ends_error_with_the_report_in_the_thread(
    http: httpx.AsyncClient, server: LoomServer
) -> None:
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "plan_execute", "input": said("Plan my holiday in Lisbon")}
    answer = (await http.post(f"/threads/{thread_id}/runs/wait", json=body)).json()
    assert answer["__error__"]["error"] == "PlanFailed"  # the fake model's echo is never a plan
    assert answer["__error__"]["message"].startswith("no valid plan after 3 attempts: ")
    (run,) = (await http.get(f"/threads/{thread_id}/runs")).json()
    assert run["status"] == "error"
    state = (await http.get(f"/threads/{thread_id}/state")).json()
    assert state["values"]["messages"][-1]["content"].startswith("I could not complete this request: no valid plan")
    assert (await http.get(f"/threads/{thread_id}")).json()["status"] == "error"
    again = await get_client(url=server.url).runs.wait(thread_id, "plan_execute", input=said("Find round sunglasses"))
    assert isinstance(again, dict) and "__error__" not in again, "the thread takes its next request"


async def test_a_refund_the_embedded_model_cannot_ask_for_is_said_not_done(http: httpx.AsyncClient) -> None:
    await http.post("/threads", json={"thread_id": "my-refund"})
    body = {"assistant_id": "support", "input": said("Please refund my last invoice")}
    answer = (await http.post("/threads/my-refund/runs/wait", json=body)).json()
    reply = answer["messages"][-1]["content"]
    assert reply.endswith(CONFIGURE_A_MODEL) and "I could not issue a refund" in reply
    assert "INV-1003" in reply, "the invoices the tools found, quoted"
    tools = [m["name"] for m in answer["messages"] if m["type"] == "tool"]
    assert tools == ["look_up_account", "list_invoices"], "no refund was made or asked for"
    (run,) = (await http.get("/threads/my-refund/runs")).json()
    assert run["status"] == "success"


async def test_support_state_shows_the_thread_id_the_client_chose(http: httpx.AsyncClient) -> None:
    await http.post("/threads", json={"thread_id": "ticket-7"})
    body = {"assistant_id": "support", "input": said("What are your opening hours?")}
    await http.post("/threads/ticket-7/runs/wait", json=body)
    state = (await http.get("/threads/ticket-7/state")).json()
    assert state["values"]["request"]["request_id"] == "ticket-7"
    stored = (await http.get("/support/requests/ticket-7")).json()
    assert stored["request_id"] == "ticket-7" and stored["turns"][0]["user_message"] == "What are your opening hours?"


async def test_a_stateless_run_leaves_no_thread_a_search_lists(http: httpx.AsyncClient) -> None:
    before = (await http.post("/threads/search", json={"limit": 1000})).json()
    answer = await http.post("/runs/wait", json={"assistant_id": "assistant", "input": said("Hello there")})
    assert answer.status_code == 200 and answer.json()["messages"][-1]["type"] == "ai"
    after = (await http.post("/threads/search", json={"limit": 1000})).json()
    assert [t["thread_id"] for t in after] == [t["thread_id"] for t in before]
    assert (await http.post("/threads/count", json={})).json() == len(before)
    hidden = (await http.post("/threads/count", json={"metadata": {"ephemeral": True}})).json()
    assert hidden >= 1, "still there for whoever asks for them by name"
    keep = {"assistant_id": "assistant", "input": said("Hello again"), "on_completion": "keep"}
    assert (await http.post("/runs/wait", json=keep)).status_code == 200
    assert (await http.post("/threads/count", json={})).json() == len(before) + 1, "a kept one is listed"


async def test_a_run_without_input_is_a_422_unless_it_continues_a_checkpoint(
    http: httpx.AsyncClient, server: LoomServer
) -> None:
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    for path in (f"/threads/{thread_id}/runs/wait", f"/threads/{thread_id}/runs/stream", "/runs/wait", "/runs"):
        refused = assert_error(await http.post(path, json={"assistant_id": "assistant"}), 422, "invalid_input")
        assert refused["detail"].startswith("input: required;"), path
    batch = await http.post(
        "/runs/batch", json=[{"assistant_id": "assistant", "input": said("Hi")}, {"assistant_id": "assistant"}]
    )
    assert assert_error(batch, 422, "invalid_input")["detail"].startswith("1.input: required;")
    resume = {"assistant_id": "assistant", "command": {"resume": "yes"}}
    assert_error(await http.post(f"/threads/{thread_id}/runs/wait", json=resume), 409, "nothing_to_resume")
    assert (await http.get(f"/threads/{thread_id}/runs")).json() == [], "nothing was stored"

    client = get_client(url=server.url)
    await client.runs.wait(thread_id, "assistant", input=said("Hello there"))
    again = await client.runs.wait(thread_id, "assistant")  # continues the thread's checkpoint: nothing left to do
    assert isinstance(again, dict) and "__error__" not in again and again["messages"][-1]["type"] == "ai"


async def test_an_empty_message_is_a_422_naming_it(http: httpx.AsyncClient) -> None:
    for content in ("", "   \n", [{"type": "text", "text": " "}]):
        body = {"assistant_id": "assistant", "input": {"messages": [{"role": "user", "content": content}]}}
        refused = assert_error(await http.post("/runs/wait", json=body), 422, "invalid_input")
        assert refused["detail"].startswith("input.messages.0.content: empty")


async def test_a_message_longer_than_the_embedded_model_takes_is_a_422_naming_the_setting(
    http: httpx.AsyncClient,
) -> None:
    long = {"assistant_id": "support", "input": said("Please read this log: " + "error at line 7; " * 1000)}
    refused = assert_error(await http.post("/runs/wait", json=long), 422, "input_too_long")
    assert "LOOM_LOCAL_CONTEXT_TOKENS=4096 less LOOM_MODEL_MAX_TOKENS=512" in refused["detail"]
    assert refused["detail"].startswith("input.messages: about 4,256 tokens (17,022 characters)")


async def test_the_first_run_on_a_thread_has_its_graph_id_in_its_metadata(http: httpx.AsyncClient) -> None:
    thread_id = (await http.post("/threads", json={"metadata": {"channel": "web"}})).json()["thread_id"]
    body = {"assistant_id": "assistant", "input": said("Hello there")}
    first = (await http.post(f"/threads/{thread_id}/runs", json=body)).json()
    assert first["metadata"]["graph_id"] == "assistant" and first["metadata"]["channel"] == "web"
    await http.get(f"/threads/{thread_id}/runs/{first['run_id']}/join")
    second = (await http.post(f"/threads/{thread_id}/runs", json=body)).json()
    assert second["metadata"]["graph_id"] == "assistant"
