"""The demo account database the support specialists act on: customers, plans, invoices, payments.

Tables are created and seeded on first use in Loom's own database (``Settings.database_url``,
SQLite under the data dir by default). Every write or destructive action goes through
:meth:`AccountsDB.apply_once`, which stores the action's idempotency key in the same transaction
as its side effect: a node replayed after a resume or a crash finds the key and returns the first
result instead of refunding twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from loom.settings import Settings, get_settings
from services.stores.db import Base, OnePerUrl, create_tables, make_engine
from services.stores.demo_accounts import CUSTOMERS, SERVICE_STATUS

PLAN_PRICES_CENTS = {"starter": 1900, "pro": 4900, "business": 9900}


class AccountError(ValueError):
    """A request the account data does not allow (unknown invoice, nothing left to refund…)."""


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str] = mapped_column(String(40), default="")
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str] = mapped_column(String(500), default="")


class Subscription(Base):
    __tablename__ = "subscriptions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    plan: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    monthly_price_cents: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Invoice(Base):
    __tablename__ = "invoices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    description: Mapped[str] = mapped_column(String(300))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    issued_at: Mapped[datetime] = mapped_column(DateTime)


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # charge | refund
    amount_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # succeeded | failed
    failure_reason: Mapped[str] = mapped_column(String(300), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ServiceStatus(Base):
    __tablename__ = "service_status"
    component: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class SideEffect(Base):
    """One applied write/destructive tool call, by idempotency key."""

    __tablename__ = "tool_side_effects"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(200))
    tool_call_id: Mapped[str] = mapped_column(String(200))
    tool: Mapped[str] = mapped_column(String(100))
    args: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[datetime] = mapped_column(DateTime)


@dataclass(frozen=True)
class IdempotencyKey:
    """Derived from the thread and the model's tool call id, so a replayed call maps to the same key."""

    thread_id: str
    tool_call_id: str

    @property
    def value(self) -> str:
        return hashlib.sha256(f"{self.thread_id}\x00{self.tool_call_id}".encode()).hexdigest()[:64]

    @classmethod
    def for_call(cls, thread_id: str | None, tool_call_id: str | None) -> IdempotencyKey:
        """Without a thread there is no replay to guard against, so the key is made unique."""
        return cls(thread_id or f"unthreaded-{uuid.uuid4().hex}", tool_call_id or uuid.uuid4().hex)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def money(cents: int, currency: str = "USD") -> str:
    return f"{cents / 100:.2f} {currency}"


class AccountsDB:
    """Thread-safe access to the account tables (ToolNode runs sync tools in a thread pool)."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def create_and_seed(self) -> None:
        with Session(self.engine) as session, session.begin():  # tables and seed in one transaction, under the lock
            tables = (Customer, Subscription, Invoice, Payment, Ticket, ServiceStatus, SideEffect)
            create_tables(session.connection(), *tables)
            for customer in CUSTOMERS:
                if session.get(Customer, customer["id"]) is None:
                    _seed_customer(session, customer)
            for component, status, message in SERVICE_STATUS:
                if session.get(ServiceStatus, component) is None:
                    session.add(ServiceStatus(component=component, status=status, message=message, updated_at=utcnow()))

    def read(self, fn: Callable[[Session], Any]) -> Any:
        with Session(self.engine) as session:
            return fn(session)

    def apply_once(
        self, key: IdempotencyKey, tool: str, args: dict[str, Any], effect: Callable[[Session, str], str]
    ) -> tuple[str, bool]:
        """Run ``effect`` and record ``key`` atomically; if ``key`` was applied before, return its result.

        Returns (result, applied_now). Two racing replays cannot both apply: the second insert of the
        key fails and rolls its transaction, side effect included, back. Or the second reads the state
        after the first committed and its effect refuses (nothing left to refund); either way the key is
        there by then, and its result is the answer, as for any replay.
        """
        try:
            with Session(self.engine) as session, session.begin():
                done = session.get(SideEffect, key.value)
                if done is not None:
                    return done.result, False
                result = effect(session, key.value)
                session.add(
                    SideEffect(
                        key=key.value,
                        thread_id=key.thread_id,
                        tool_call_id=key.tool_call_id,
                        tool=tool,
                        args=json.dumps(args, sort_keys=True, default=str),
                        result=result,
                        applied_at=utcnow(),
                    )
                )
        except (IntegrityError, AccountError):
            with Session(self.engine) as session:
                done = session.get(SideEffect, key.value)
                if done is None:
                    raise
                return done.result, False
        return result, True


def _seed_customer(session: Session, data: dict[str, Any]) -> None:
    customer_id = data["id"]
    session.add(
        Customer(**{k: data[k] for k in ("id", "user_id", "name", "email", "phone", "status", "status_reason")})
    )
    session.flush()
    session.add(Subscription(customer_id=customer_id, **data["subscription"]))
    for ticket in data["tickets"]:
        session.add(Ticket(customer_id=customer_id, **ticket))
    for invoice in data["invoices"]:
        fields = {k: v for k, v in invoice.items() if k != "payments"}
        session.add(Invoice(customer_id=customer_id, currency="USD", **fields))
        session.flush()
        for payment in invoice["payments"]:
            session.add(Payment(invoice_id=invoice["id"], kind="charge", **payment))


_DBS = OnePerUrl[AccountsDB]()


def get_accounts_db(settings: Settings | None = None) -> AccountsDB:
    """One database object per URL, created and seeded the first time a tool needs it."""
    url = (settings or get_settings()).resolved_database_url()

    def make() -> AccountsDB:
        db = AccountsDB(url)
        db.create_and_seed()
        return db

    return _DBS.get(url, make)
