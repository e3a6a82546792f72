"""What the account tools read and change, as functions of a session and the caller's user id.

The customer is always the one linked to the run's user, never one the model names, so no prompt
can read or refund another customer's account. Effects return JSON text, which
``AccountsDB.apply_once`` stores as the replayable result.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.stores.accounts import (
    PLAN_PRICES_CENTS,
    AccountError,
    Customer,
    Invoice,
    Payment,
    ServiceStatus,
    Subscription,
    Ticket,
    money,
    utcnow,
)


def customer_of(session: Session, user_id: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.user_id == user_id))
    if customer is None:
        raise AccountError(f"no customer account is linked to user {user_id!r}")
    return customer


def subscription_of(session: Session, customer: Customer) -> Subscription:
    subscription = session.scalar(select(Subscription).where(Subscription.customer_id == customer.id))
    if subscription is None:
        raise AccountError(f"customer {customer.id} has no subscription")
    return subscription


def account_summary(session: Session, user_id: str) -> dict[str, Any]:
    customer = customer_of(session, user_id)
    subscription = subscription_of(session, customer)
    open_invoices = session.scalars(
        select(Invoice).where(Invoice.customer_id == customer.id, Invoice.status == "open")
    ).all()
    open_tickets = session.scalars(
        select(Ticket.id).where(Ticket.customer_id == customer.id, Ticket.status != "closed")
    ).all()
    return {
        "customer_id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "account_status": customer.status,
        "account_status_reason": customer.status_reason,
        "plan": subscription.plan,
        "subscription_status": subscription.status,
        "monthly_price": money(subscription.monthly_price_cents),
        "balance_due": money(sum(i.amount_cents for i in open_invoices)),
        "open_invoices": [i.id for i in open_invoices],
        "open_tickets": list(open_tickets),
    }


def invoices_of(session: Session, user_id: str, status: str, limit: int) -> list[dict[str, Any]]:
    customer = customer_of(session, user_id)
    query = select(Invoice).where(Invoice.customer_id == customer.id).order_by(Invoice.issued_at.desc())
    if status != "any":
        query = query.where(Invoice.status == status)
    invoices = session.scalars(query.limit(limit)).all()
    return [_invoice_view(session, invoice) for invoice in invoices]


def _invoice_view(session: Session, invoice: Invoice) -> dict[str, Any]:
    payments = session.scalars(select(Payment).where(Payment.invoice_id == invoice.id).order_by(Payment.id)).all()
    return {
        "invoice_id": invoice.id,
        "description": invoice.description,
        "amount": money(invoice.amount_cents, invoice.currency),
        "status": invoice.status,
        "issued_at": invoice.issued_at.date().isoformat(),
        "payments": [
            {
                "kind": p.kind,
                "amount": money(p.amount_cents, invoice.currency),
                "status": p.status,
                "failure_reason": p.failure_reason,
                "at": p.created_at.isoformat(),
            }
            for p in payments
        ],
    }


def service_status(session: Session, user_id: str, component: str | None) -> dict[str, Any]:
    query = select(ServiceStatus).order_by(ServiceStatus.component)
    if component:
        query = query.where(ServiceStatus.component == component)
    customer = customer_of(session, user_id)
    subscription = subscription_of(session, customer)
    return {
        "components": [
            {"component": s.component, "status": s.status, "message": s.message} for s in session.scalars(query)
        ],
        "your_access": {
            "account_status": customer.status,
            "reason": customer.status_reason,
            "subscription_status": subscription.status,
        },
    }


def update_contact(session: Session, user_id: str, email: str | None, phone: str | None) -> str:
    customer = customer_of(session, user_id)
    changed = {}
    if email is not None:
        changed["email"], customer.email = {"from": customer.email, "to": email}, email
    if phone is not None:
        changed["phone"], customer.phone = {"from": customer.phone, "to": phone}, phone
    if not changed:
        raise AccountError("give a new email, a new phone number, or both")
    return json.dumps({"updated": changed, "customer_id": customer.id})


def change_plan(session: Session, user_id: str, plan: str) -> str:
    subscription = subscription_of(session, customer_of(session, user_id))
    if subscription.status == "canceled":
        raise AccountError("the subscription is canceled; a plan change needs an active subscription")
    previous = subscription.plan
    subscription.plan, subscription.monthly_price_cents = plan, PLAN_PRICES_CENTS[plan]
    return json.dumps({"plan": {"from": previous, "to": plan}, "monthly_price": money(PLAN_PRICES_CENTS[plan])})


def refund(session: Session, user_id: str, invoice_id: str, amount_cents: int | None, key: str) -> str:
    """Refund up to what was charged and not yet refunded; the whole remainder by default."""
    customer = customer_of(session, user_id)
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.customer_id != customer.id:
        raise AccountError(f"no invoice {invoice_id!r} on this account")
    payments = session.scalars(select(Payment).where(Payment.invoice_id == invoice.id, Payment.status == "succeeded"))
    signed = [p.amount_cents if p.kind == "charge" else -p.amount_cents for p in payments]
    refundable = sum(signed)
    if refundable <= 0:
        raise AccountError(f"{invoice.id} has no captured payment left to refund (status: {invoice.status})")
    amount = refundable if amount_cents is None else amount_cents
    if not 0 < amount <= refundable:
        raise AccountError(f"refund amount must be between 0.01 and {money(refundable)} for {invoice.id}")
    payment = Payment(
        invoice_id=invoice.id,
        kind="refund",
        amount_cents=amount,
        status="succeeded",
        idempotency_key=key,
        created_at=utcnow(),
    )
    session.add(payment)
    invoice.status = "refunded" if amount == refundable else "partially_refunded"
    session.flush()
    return json.dumps(
        {
            "refund_id": f"re_{payment.id}",
            "invoice_id": invoice.id,
            "amount": money(amount),
            "invoice_status": invoice.status,
        }
    )


def cancel_subscription(session: Session, user_id: str) -> str:
    subscription = subscription_of(session, customer_of(session, user_id))
    if subscription.status == "canceled":
        raise AccountError("the subscription is already canceled")
    subscription.status, subscription.canceled_at = "canceled", utcnow()
    return json.dumps({"subscription_id": subscription.id, "status": "canceled", "plan": subscription.plan})
