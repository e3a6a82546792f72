"""The /support routes on a real uvicorn server, over requests the support graph really recorded."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from graphs.support import build_graph
from loom.settings import get_settings
from nodes.models.fake import tool_call
from server.errors import install_error_handlers
from server.routes.support import router
from state.common import RunContext
from tests.fixtures.models import ScriptedModels
from tests.fixtures.webhook_receiver import WebhookReceiver

KEYS = {"demo": "key-demo", "alice": "key-alice"}


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("LOOM_SUPPORT_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("LOOM_SUPPORT_WEBHOOK_BACKOFF_S", "0")
        monkeypatch.setenv("LOOM_API_KEYS", '{"demo": "key-demo", "alice": "key-alice"}')
        get_settings.cache_clear()
        yield receiver


@pytest.fixture
def base_url(webhook: WebhookReceiver) -> Iterator[str]:
    """The router on a bare FastAPI app, served by uvicorn on a socket that is listening before we return."""
    app = FastAPI()
    app.state.settings = get_settings()
    install_error_handlers(app)
    app.include_router(router)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join()
    sock.close()


@pytest.fixture
async def api(base_url: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {user: httpx.AsyncClient(base_url=base_url, headers={"x-api-key": key}) for user, key in KEYS.items()}
    yield clients
    for client in clients.values():
        await client.aclose()


async def run_done_when_scenarios(checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]) -> None:
    """demo: payment failure, then an urgent follow-up; alice: an approved refund."""
    refund = tool_call("issue_refund", {"invoice_id": "INV-2003", "reason": "asked"}, "call_refund")
    models = scripted(billing=["Your card was declined.", refund, "Refunded."], escalation=["On it, right now."])
    graph = build_graph(models, checkpointer)

    async def say(text: str, thread: str, user: str) -> None:
        context = RunContext(user_id=user)
        await graph.ainvoke(
            {"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": thread}}, context=context
        )

    await say("My payment failed and I can't access my account", "pay", "demo")
    await say("I need this fixed immediately, I have a deadline!", "pay", "demo")
    await say("Refund my last invoice", "refund", "alice")
    config: Any = {"configurable": {"thread_id": "refund"}}
    await graph.ainvoke(Command(resume={"decision": "approve"}), config, context=RunContext(user_id="alice"))


async def test_requests_are_listed_filtered_and_scoped(
    api: dict[str, httpx.AsyncClient], checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    await run_done_when_scenarios(checkpointer, scripted)
    demo, alice = api["demo"], api["alice"]
    listed = (await demo.get("/support/requests")).json()
    assert [r["request_id"] for r in listed["requests"]] == ["pay"]
    escalated = (await demo.get("/support/requests", params={"status": "escalated", "priority": "critical"})).json()
    assert escalated["count"] == 1 and escalated["requests"][0]["category"] == "billing"
    assert (await demo.get("/support/requests", params={"category": "technical"})).json()["count"] == 0
    bad = await demo.get("/support/requests", params={"status": "open"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.status"
    bad_priority = await demo.get("/support/requests", params={"priority": "urgent"})
    assert bad_priority.status_code == 422 and "priority" in bad_priority.json()["detail"]

    detail = (await demo.get("/support/requests/pay")).json()
    assert [t["agent"] for t in detail["turns"]] == ["billing", "escalation"]
    assert "urgency" in detail["escalation_reason"]
    for missing in (await alice.get("/support/requests/pay"), await demo.get("/support/requests/nope")):
        assert missing.status_code == 404 and missing.json()["code"] == "support_request_not_found"
    async with httpx.AsyncClient(base_url=str(demo.base_url)) as anonymous:
        assert (await anonymous.get("/support/requests")).status_code == 401


async def test_resolve_calls_the_webhook_once_and_analytics_add_up(
    api: dict[str, httpx.AsyncClient],
    checkpointer: BaseCheckpointSaver[str],
    scripted: type[ScriptedModels],
    webhook: WebhookReceiver,
) -> None:
    await run_done_when_scenarios(checkpointer, scripted)
    demo, alice = api["demo"], api["alice"]
    assert (await demo.post("/support/requests/pay/resolve", json={"summary": ""})).status_code == 422
    assert (await alice.post("/support/requests/pay/resolve", json={"summary": "x"})).status_code == 404
    resolved = await demo.post("/support/requests/pay/resolve", json={"summary": "Card updated, access restored."})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["webhook_delivered"] is True
    assert (await demo.post("/support/requests/pay/resolve", json={"summary": "again"})).status_code == 409
    assert webhook.events() == ["support.request.escalated", "support.request.resolved"]
    assert webhook.calls[1]["body"]["request"]["resolution_summary"] == "Card updated, access restored."

    stats = (await demo.get("/support/analytics")).json()
    assert stats["total_requests"] == 1 and stats["by_status"]["resolved"] == 1
    assert stats["by_category"] == {"billing": 1} and stats["by_priority"] == {"critical": 1}
    assert stats["escalation_rate"] == 1.0
    detail = (await demo.get("/support/requests/pay")).json()
    waited = datetime.fromisoformat(detail["turns"][0]["timestamp"]) - datetime.fromisoformat(detail["created_at"])
    assert stats["mean_first_response_seconds"] == pytest.approx(waited.total_seconds(), abs=1e-3)

    refunds = (await alice.get("/support/analytics")).json()
    assert refunds["total_requests"] == 1 and refunds["escalation_rate"] == 0.0
    assert refunds["by_category"] == {"billing": 1} and refunds["by_status"]["in_progress"] == 1
    assert refunds["approvals"] == {"pending": 0, "approve": 1, "edit": 0, "reject": 0}
