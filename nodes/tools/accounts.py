"""Account tools for the support specialists, each declaring its permission level (seed 003).

read: ``look_up_account``, ``list_invoices``, ``check_service_status`` run freely.
write: ``update_contact_details``, ``change_plan`` need the run's ``write`` grant.
destructive: ``issue_refund``, ``cancel_subscription`` always wait for a human's approval.

Writes and destructive actions carry an idempotency key made of the thread id and the model's
tool call id, so replaying the tools node (after an approval resume or a crash) never applies
an action twice; the replay returns the first result, marked as such.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from langchain_core.tools import BaseTool, ToolException, tool
from langgraph.prebuilt import ToolRuntime
from pydantic import Field
from sqlalchemy.orm import Session

from nodes.common.permissions import declare
from services.stores import account_actions as actions
from services.stores.accounts import AccountError, IdempotencyKey, get_accounts_db
from state.common import RunContext

InvoiceStatus = Literal["any", "paid", "open", "refunded", "partially_refunded"]
Component = Literal["api", "dashboard", "billing", "email"]
Plan = Literal["starter", "pro", "business"]
Reason = Annotated[str, Field(min_length=3, max_length=500, description="Why, in the customer's terms")]


def _user(runtime: ToolRuntime[RunContext]) -> str:
    return (runtime.context or RunContext()).user_id


def _read(runtime: ToolRuntime[RunContext], query: Callable[[Session, str], Any]) -> str:
    user_id = _user(runtime)
    try:
        data = get_accounts_db().read(lambda session: query(session, user_id))
    except AccountError as exc:
        raise ToolException(str(exc)) from exc
    return json.dumps(data, ensure_ascii=False)


def _apply_once(
    runtime: ToolRuntime[RunContext], name: str, args: dict[str, Any], effect: Callable[[Session, str, str], str]
) -> str:
    """Apply ``effect`` at most once per (thread, tool call); a replay returns the stored result."""
    thread_id = (runtime.config.get("configurable") or {}).get("thread_id")
    key = IdempotencyKey.for_call(str(thread_id) if thread_id else None, runtime.tool_call_id)
    user_id = _user(runtime)
    try:
        result, applied = get_accounts_db().apply_once(key, name, args, lambda s, k: effect(s, user_id, k))
    except AccountError as exc:
        raise ToolException(str(exc)) from exc
    runtime.stream_writer({"event": "side_effect", "tool": name, "args": args, "applied": applied})
    if applied:
        return result
    return json.dumps({**json.loads(result), "note": "already applied for this request; not repeated"})


def _account_tool(fn: BaseTool, level: Literal["read", "write", "destructive"]) -> BaseTool:
    fn.handle_tool_error = True  # account rule violations go back to the model as error results
    return declare(fn, level)


@tool
def look_up_account(runtime: ToolRuntime[RunContext]) -> str:
    """Look up the customer's own account: plan, subscription and account status (and why), balance due,
    open invoices and open tickets."""
    return _read(runtime, actions.account_summary)


@tool
def list_invoices(
    runtime: ToolRuntime[RunContext],
    status: InvoiceStatus = "any",
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
) -> str:
    """List the customer's invoices, newest first, with every payment attempt and why it failed."""
    return _read(runtime, lambda session, user_id: actions.invoices_of(session, user_id, status, limit))


@tool
def check_service_status(runtime: ToolRuntime[RunContext], component: Component | None = None) -> str:
    """Check platform status (api, dashboard, billing, email) and whether this customer's access is
    suspended, and why."""
    return _read(runtime, lambda session, user_id: actions.service_status(session, user_id, component))


@tool
def update_contact_details(
    runtime: ToolRuntime[RunContext],
    email: Annotated[str | None, Field(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")] = None,
    phone: Annotated[str | None, Field(pattern=r"^\+?[0-9 ()-]{6,20}$")] = None,
) -> str:
    """Change the customer's contact email and/or phone number."""
    args = {"email": email, "phone": phone}
    return _apply_once(
        runtime, "update_contact_details", args, lambda s, u, k: actions.update_contact(s, u, email, phone)
    )


@tool
def change_plan(runtime: ToolRuntime[RunContext], plan: Plan) -> str:
    """Move the customer's subscription to another plan (starter 19, pro 49, business 99 USD a month)."""
    return _apply_once(runtime, "change_plan", {"plan": plan}, lambda s, u, k: actions.change_plan(s, u, plan))


@tool
def issue_refund(
    runtime: ToolRuntime[RunContext],
    invoice_id: Annotated[str, Field(pattern=r"^INV-\d+$", description="e.g. INV-1002")],
    reason: Reason,
    amount_cents: Annotated[int | None, Field(gt=0, description="Omit to refund the whole remaining amount")] = None,
) -> str:
    """Refund a paid invoice to the customer's card, fully or partly. Needs a human's approval."""
    args = {"invoice_id": invoice_id, "reason": reason, "amount_cents": amount_cents}
    return _apply_once(runtime, "issue_refund", args, lambda s, u, k: actions.refund(s, u, invoice_id, amount_cents, k))


@tool
def cancel_subscription(runtime: ToolRuntime[RunContext], reason: Reason) -> str:
    """Cancel the customer's subscription now. Needs a human's approval."""
    return _apply_once(
        runtime, "cancel_subscription", {"reason": reason}, lambda s, u, k: actions.cancel_subscription(s, u)
    )


READ_TOOLS = [_account_tool(t, "read") for t in (look_up_account, list_invoices, check_service_status)]
WRITE_TOOLS = [_account_tool(t, "write") for t in (update_contact_details, change_plan)]
DESTRUCTIVE_TOOLS = [_account_tool(t, "destructive") for t in (issue_refund, cancel_subscription)]
ACCOUNT_TOOLS = [*READ_TOOLS, *WRITE_TOOLS, *DESTRUCTIVE_TOOLS]
