"""The support graph: triage, specialists on real account data, escalation, approvals, idempotent refunds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command
from sqlalchemy import select
from sqlalchemy.orm import Session

from graphs.support import build_graph
from loom.settings import get_settings
from nodes.models.fake import tool_call, tool_calls
from nodes.support.agents import CONFIGURE_A_MODEL
from services.stores.accounts import Invoice, Payment, SideEffect, Subscription, get_accounts_db
from services.stores.support import get_support_store
from state.common import Permission, RunContext
from tests.fixtures.models import ScriptedModels
from tests.fixtures.webhook_receiver import WebhookReceiver

SNAPSHOT = Path(__file__).parent / "snapshots" / "support.mmd"
APPROVE = {"decisions": [{"type": "approve"}]}  # LangChain's HITLResponse
REFUND = tool_call("issue_refund", {"invoice_id": "INV-2003", "reason": "customer asked for a refund"}, "call_refund")


def config(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def context(user: str = "demo", permissions: tuple[Permission, ...] = ("read",)) -> RunContext:
    return RunContext(user_id=user, user_name=user.title(), permissions=permissions)


async def ask(graph: Any, text: str, thread: str = "t1", user: str = "demo", **kw: Any) -> dict[str, Any]:
    return await graph.ainvoke(  # type: ignore[no-any-return]
        {"messages": [HumanMessage(text)]}, config(thread), context=context(user, **kw)
    )


async def resume(graph: Any, answer: Any, thread: str = "t1", user: str = "alice") -> dict[str, Any]:
    return await graph.ainvoke(Command(resume=answer), config(thread), context=context(user))  # type: ignore[no-any-return]


def tool_results(state: dict[str, Any], name: str | None = None) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage) and name in (None, m.name)]


def refunds(invoice_id: str = "INV-2003") -> list[Payment]:
    with Session(get_accounts_db().engine) as session:
        query = select(Payment).where(Payment.invoice_id == invoice_id, Payment.kind == "refund")
        return list(session.scalars(query))


async def stored_request(user: str, thread: str) -> Any:
    """The support table's row, read off the event loop (Loom's stores are synchronous)."""
    return await asyncio.to_thread(lambda: get_support_store().get_request(user, thread))


def prompt_text(models: ScriptedModels, role: str, call: int = -1) -> str:
    return "\n".join(m.text for m in models.models[role].calls[call])


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("LOOM_SUPPORT_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("LOOM_SUPPORT_WEBHOOK_BACKOFF_S", "0")
        get_settings.cache_clear()
        yield receiver


def test_topology_matches_snapshot() -> None:
    drawing = build_graph().get_graph().draw_mermaid()
    assert drawing == SNAPSHOT.read_text(), "graph topology changed: update the snapshot if intended"


async def test_payment_failure_is_billing_high_and_answered_from_account_data(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(billing=["INV-1003 was declined twice, so access is suspended; update your card."])
    state = await ask(build_graph(models, checkpointer), "My payment failed and I can't access my account")
    triage = state["triage"]
    assert (triage["category"], triage["priority"], triage["stage"]) == ("billing", "high", "keywords")
    assert triage["suggested_agent"] == "billing" and triage["reasoning"]
    assert "triage" not in models.models  # settled by keywords, no model call
    account = json.loads(tool_results(state, "look_up_account")[0].text)
    assert account["account_status"] == "suspended" and account["open_invoices"] == ["INV-1003"]
    invoices = json.loads(tool_results(state, "list_invoices")[0].text)
    assert invoices[0]["invoice_id"] == "INV-1003" and "card_declined" in invoices[0]["payments"][0]["failure_reason"]
    assert "card_declined" in prompt_text(models, "billing")  # the answer was written from the real data
    request = state["request"]
    assert (request["status"], request["current_agent"], request["priority"]) == ("in_progress", "billing", "high")
    stored = await stored_request("demo", "t1")
    assert stored is not None and stored["status"] == "in_progress" and stored["category"] == "billing"
    assert [t["agent"] for t in stored["turns"]] == ["billing"]
    assert stored["first_response_at"] is not None


async def test_follow_up_stays_with_the_specialist_and_sees_the_conversation(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(billing=["Your card was declined.", "Add a new card under Settings → Billing."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "My payment failed and I can't access my account")
    state = await ask(graph, "Thanks, what should I do next?")
    assert state["request"]["current_agent"] == "billing" and len(state["turns"]) == 2
    assert state["messages"][-1].text == "Add a new card under Settings → Billing."
    prompt = prompt_text(models, "billing")
    assert "My payment failed" in prompt and "Your card was declined." in prompt
    assert "triage" not in models.models


async def test_urgent_follow_up_escalates_with_reason_priority_and_webhook(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels], webhook: WebhookReceiver
) -> None:
    models = scripted(billing=["Your card was declined."], escalation=["I'm taking this personally, right now."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "My payment failed and I can't access my account")
    state = await ask(graph, "I need this fixed immediately, I have a deadline!")
    request = state["request"]
    assert (request["category"], request["priority"], request["status"]) == ("billing", "critical", "escalated")
    assert request["current_agent"] == "escalation" and "urgency" in (request["escalation_reason"] or "")
    assert state["turns"][-1]["agent"] == "escalation"
    assert "My payment failed" in prompt_text(models, "escalation")  # the senior agent sees the whole case
    assert webhook.events() == ["support.request.escalated"]
    assert webhook.calls[0]["body"]["request"]["request_id"] == "t1"
    stored = await stored_request("demo", "t1")
    assert stored is not None and stored["status"] == "escalated" and stored["escalated_at"]


async def test_urgent_first_message_is_triaged_escalation_and_escalates(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(escalation=["On it."])
    state = await ask(build_graph(models, checkpointer), "I need this fixed immediately, I have a deadline!")
    assert (state["triage"]["category"], state["triage"]["priority"]) == ("escalation", "critical")
    assert state["request"]["status"] == "escalated" and state["request"]["current_agent"] == "escalation"


async def test_unclear_ticket_uses_constrained_llm_triage(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    decision = {
        "category": "technical",
        "priority": "low",
        "reasoning": "mentions setup",
        "suggested_agent": "technical",
    }
    models = scripted(triage=[decision], technical=["Let's walk through the setup."])
    state = await ask(build_graph(models, checkpointer), "Hello, something odd with my setup yesterday")
    assert state["triage"] == {**decision, "stage": "llm"}
    assert state["request"]["current_agent"] == "technical"
    assert models.models["triage"].calls  # the model was asked


async def test_unusable_triage_output_falls_back_to_general_medium_with_reason(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(triage=["this is not JSON"], general=["Happy to help."])
    state = await ask(build_graph(models, checkpointer), "Hello, something odd with my setup yesterday")
    triage = state["triage"]
    assert (triage["category"], triage["priority"], triage["stage"]) == ("general", "medium", "fallback")
    assert "unusable" in triage["reasoning"]
    assert state["request"]["current_agent"] == "general"


async def test_refund_pauses_for_approval_and_refunds_once_even_when_resumed_twice(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(billing=[REFUND, "Refunded INV-2003."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "Refund my last invoice", user="alice")
    snapshot = await graph.aget_state(config())
    (pending,) = snapshot.interrupts
    (action,) = pending.value["action_requests"]  # LangChain's HITLRequest, as Agent Chat UI reads it
    assert (action["name"], action["args"]) == ("issue_refund", REFUND.tool_calls[0]["args"]) and action["description"]
    (review,) = pending.value["review_configs"]
    assert review["action_name"] == "issue_refund" and review["allowed_decisions"] == ["approve", "edit", "reject"]
    assert set(review["args_schema"]["properties"]) == {"invoice_id", "reason", "amount_cents"}
    assert pending.value["tool_calls"] == [
        {"tool_call_id": "call_refund", "name": "issue_refund", "permission": "destructive"}
    ]
    assert refunds() == []
    assert (await stored_request("alice", "t1"))["approvals"][0]["decision"] == "pending"  # type: ignore[index]

    state = await resume(graph, APPROVE)
    assert json.loads(tool_results(state, "issue_refund")[0].text)["amount"] == "99.00 USD"
    await resume(graph, APPROVE)  # a second resume of the same thread
    replay = await graph.ainvoke(Command(resume=APPROVE), snapshot.config, context=context("alice"))  # from the pause
    assert "already applied" in tool_results(replay, "issue_refund")[-1].text
    (refund,) = refunds()
    assert refund.amount_cents == 9900 and refund.status == "succeeded"
    with Session(get_accounts_db().engine) as session:
        assert session.get(Invoice, "INV-2003").status == "refunded"  # type: ignore[union-attr]
        assert len(session.scalars(select(SideEffect)).all()) == 1
    assert (await stored_request("alice", "t1"))["approvals"][0]["decision"] == "approve"  # type: ignore[index]


async def test_approver_can_edit_the_arguments(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(billing=[REFUND, "Refunded part of INV-2003."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "Refund my last invoice", user="alice")
    edited = {"invoice_id": "INV-2003", "reason": "goodwill, partial", "amount_cents": 5000}
    with pytest.raises(ValueError, match="must stay 'issue_refund'"):  # an edit cannot swap the action
        await resume(graph, {"decisions": [{"type": "edit", "edited_action": {"name": "change_plan", "args": {}}}]})
    state = await resume(
        graph, {"decisions": [{"type": "edit", "edited_action": {"name": "issue_refund", "args": edited}}]}
    )
    (result,) = tool_results(state, "issue_refund")
    assert "edited the arguments" in result.text and "50.00 USD" in result.text
    assert [r.amount_cents for r in refunds()] == [5000]


async def test_rejection_reason_reaches_the_agent_and_nothing_is_refunded(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(billing=[REFUND, "I can't refund that invoice, sorry."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "Refund my last invoice", user="alice")
    with pytest.raises(ValueError, match="1 action"):  # one decision per action request; the interrupt stays open
        await resume(graph, {"decisions": [{"type": "approve"}, {"type": "approve"}]})
    state = await resume(graph, {"decisions": [{"type": "reject", "message": "outside the 30-day refund window"}]})
    (result,) = tool_results(state, "issue_refund")
    assert result.status == "error" and "outside the 30-day refund window" in result.text
    assert "outside the 30-day refund window" in prompt_text(models, "billing")
    assert refunds() == []


async def test_loom_s_earlier_single_decision_answers_still_resume(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(billing=[REFUND, "Refunded part of INV-2003."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "Refund my last invoice", user="alice")
    with pytest.raises(ValueError, match="reason"):  # that form's rejection must say why
        await resume(graph, {"decision": "reject"})
    edited = {"invoice_id": "INV-2003", "reason": "goodwill", "amount_cents": 2500}
    state = await resume(graph, {"decision": "edit", "args": edited})
    assert "25.00 USD" in tool_results(state, "issue_refund")[0].text
    assert [r.amount_cents for r in refunds()] == [2500]


async def test_two_destructive_calls_are_one_request_with_a_decision_each(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    both = tool_calls(
        ("issue_refund", {"invoice_id": "INV-2003", "reason": "customer asked"}, "call_refund"),
        ("cancel_subscription", {"reason": "customer asked"}, "call_cancel"),
    )
    models = scripted(billing=[both, "Refunded; your subscription stays."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "Refund my last invoice and cancel my subscription", user="alice")
    (pending,) = (await graph.aget_state(config())).interrupts
    assert [a["name"] for a in pending.value["action_requests"]] == ["issue_refund", "cancel_subscription"]
    assert [r["action_name"] for r in pending.value["review_configs"]] == ["issue_refund", "cancel_subscription"]
    decisions = [{"type": "approve"}, {"type": "reject", "message": "keep the subscription"}]
    state = await resume(graph, {"decisions": decisions})
    assert json.loads(tool_results(state, "issue_refund")[0].text)["amount"] == "99.00 USD"
    (cancel,) = tool_results(state, "cancel_subscription")
    assert cancel.status == "error" and "keep the subscription" in cancel.text
    with Session(get_accounts_db().engine) as session:
        assert session.get(Subscription, "sub_alice").status != "cancelled"  # type: ignore[union-attr]


async def test_writes_need_the_grant_and_apply_once(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    change = tool_call("change_plan", {"plan": "starter"}, "call_plan")
    models = scripted(billing=[change, "You need a write grant.", change, "Moved you to starter."])
    graph = build_graph(models, checkpointer)
    denied = await ask(graph, "Please change my plan to starter", thread="read-only")
    assert "PERMISSION DENIED" in tool_results(denied, "change_plan")[0].text
    granted = await ask(graph, "Please change my plan to starter", thread="write", permissions=("read", "write"))
    assert json.loads(tool_results(granted, "change_plan")[0].text)["plan"] == {"from": "pro", "to": "starter"}
    with Session(get_accounts_db().engine) as session:
        assert session.get(Subscription, "sub_demo").plan == "starter"  # type: ignore[union-attr]


async def test_invalid_calls_list_what_is_valid_and_exhaust_the_retry_budget(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(
        billing=[
            tool_call("delete_account", {}),
            tool_call("change_plan", {"plan": "platinum"}),
            tool_call("list_invoices", {"limit": 500}),
        ],
        escalation=["A senior agent has your case."],
    )
    state = await ask(build_graph(models, checkpointer), "What does the pricing look like for the business plan?")
    unknown, bad_plan, bad_limit = tool_results(state)[:3]
    assert "Unknown tool 'delete_account'" in unknown.text and "list_invoices(" in unknown.text
    assert "issue_refund(" in unknown.text  # lists the tools this agent may call
    assert "Invalid arguments for change_plan" in bad_plan.text and '"starter" | "pro" | "business"' in bad_plan.text
    assert "limit" in bad_limit.text
    request = state["request"]
    assert request["status"] == "escalated" and "retry budget" in (request["escalation_reason"] or "")


async def test_specialist_can_escalate_with_a_tool_call(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(
        technical=[tool_call("escalate", {"reason": "server-side bug"}, "call_esc")],
        escalation=["Engineering is on it."],
    )
    state = await ask(build_graph(models, checkpointer), "The API returns 500 errors on every call")
    assert tool_results(state, "check_service_status")  # read tools ran before the specialist decided
    assert state["request"]["status"] == "escalated" and "server-side bug" in state["request"]["escalation_reason"]
    assert any(m.tool_call_id == "call_esc" for m in tool_results(state))  # the escalate call was answered


async def test_specialist_flag_phrase_escalates(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(general=["I'm afraid this is beyond my scope."], escalation=["I'll take it from here."])
    state = await ask(build_graph(models, checkpointer), "How do I get a copy of the documentation?")
    assert (
        state["request"]["current_agent"] == "escalation" and "beyond my scope" in state["request"]["escalation_reason"]
    )
    assert state["messages"][-1].text == "I'll take it from here."


async def test_customer_writing_after_resolution_reopens_the_request(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(billing=["Your card was declined.", "Let's look again."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "My payment failed and I can't access my account")
    await asyncio.to_thread(lambda: get_support_store().resolve("demo", "t1", "Card updated.", datetime(2026, 10, 7)))
    state = await ask(graph, "Thanks, one more thing about it")
    assert state["request"]["status"] == "in_progress" and state["request"]["current_agent"] == "billing"
    stored = await stored_request("demo", "t1")
    assert stored is not None and stored["status"] == "in_progress" and stored["resolved_at"] is None


async def test_on_a_model_that_cannot_call_the_refund_tool_the_reply_says_it_was_not_done(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels], set_env: Any
) -> None:
    set_env(LOOM_QUOTE_TOOL_RESULTS="true")  # what the embedded model gets when unset
    models = scripted()
    state = await ask(build_graph(models, checkpointer), "Please refund my last invoice", user="alice")
    reply = state["messages"][-1].text
    assert "INV-2003" in reply, "the account data the tools returned, quoted"
    assert reply.endswith(
        f"I could not issue a refund: this model cannot reliably fill in the tool that does it, "
        f"so nothing was changed. {CONFIGURE_A_MODEL}"
    )
    assert "billing" not in models.models and refunds() == [], "no model wrote the reply and no refund was made"
    question = await ask(build_graph(models, checkpointer), "Why was I billed twice?", thread="t2", user="alice")
    assert "I could not" not in question["messages"][-1].text
