"""The demo account database: seeded once, scoped per user, and side effects applied at most once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.stores import account_actions as actions
from services.stores.accounts import AccountError, AccountsDB, Customer, IdempotencyKey, Invoice, Payment, SideEffect


@pytest.fixture
def db(tmp_path: Path) -> AccountsDB:
    db = AccountsDB(f"sqlite:///{tmp_path}/accounts.sqlite")
    db.create_and_seed()
    return db


@pytest.fixture
def pg_db(postgres_schema_url: str) -> Iterator[AccountsDB]:
    """The account tables in a throwaway PostgreSQL schema."""
    db = AccountsDB(postgres_schema_url)
    db.create_and_seed()
    yield db
    db.engine.dispose()


def refund_effect(user: str, invoice: str, amount: int | None = None) -> Callable[[Session, str], str]:
    return lambda session, key: actions.refund(session, user, invoice, amount, key)


def count_refunds(db: AccountsDB) -> int:
    with Session(db.engine) as session:
        return int(session.scalar(select(func.count(Payment.id)).where(Payment.kind == "refund")) or 0)


def test_seeding_twice_adds_nothing(db: AccountsDB) -> None:
    db.create_and_seed()
    with Session(db.engine) as session:
        assert session.scalar(select(func.count(Customer.id))) == 2
        assert session.scalar(select(func.count(Invoice.id))) == 6


def test_account_views_show_the_users_own_data(db: AccountsDB) -> None:
    demo = db.read(lambda s: actions.account_summary(s, "demo"))
    assert demo["account_status"] == "suspended" and demo["balance_due"] == "49.00 USD"
    invoices = db.read(lambda s: actions.invoices_of(s, "demo", "open", 10))
    assert [i["invoice_id"] for i in invoices] == ["INV-1003"]
    assert [p["status"] for p in invoices[0]["payments"]] == ["failed", "failed"]
    status = db.read(lambda s: actions.service_status(s, "demo", "billing"))
    assert status["components"][0]["status"] == "degraded" and status["your_access"]["account_status"] == "suspended"
    with pytest.raises(AccountError, match="no customer account"):
        db.read(lambda s: actions.account_summary(s, "mallory"))


def test_refund_rules(db: AccountsDB) -> None:
    key = IdempotencyKey("t", "c1")
    with pytest.raises(AccountError, match="no invoice"):  # alice's invoice, asked for by demo
        db.apply_once(key, "issue_refund", {}, refund_effect("demo", "INV-2003"))
    with pytest.raises(AccountError, match="no captured payment"):  # INV-1003 was never paid
        db.apply_once(key, "issue_refund", {}, refund_effect("demo", "INV-1003"))
    with pytest.raises(AccountError, match="between"):
        db.apply_once(key, "issue_refund", {}, refund_effect("alice", "INV-2003", 10_000))
    part, _ = db.apply_once(IdempotencyKey("t", "c2"), "issue_refund", {}, refund_effect("alice", "INV-2003", 4000))
    rest, _ = db.apply_once(IdempotencyKey("t", "c3"), "issue_refund", {}, refund_effect("alice", "INV-2003"))
    assert json.loads(part)["invoice_status"] == "partially_refunded"
    assert json.loads(rest)["amount"] == "59.00 USD" and json.loads(rest)["invoice_status"] == "refunded"
    with Session(db.engine) as session:  # failed attempts left nothing behind
        assert session.scalar(select(func.count(SideEffect.key))) == 2


def test_same_key_applies_once_and_replays_the_first_result(db: AccountsDB) -> None:
    key = IdempotencyKey("thread-1", "call_refund_0")
    first, applied = db.apply_once(key, "issue_refund", {"invoice_id": "INV-2002"}, refund_effect("alice", "INV-2002"))
    again, reapplied = db.apply_once(
        key, "issue_refund", {"invoice_id": "INV-2002"}, refund_effect("alice", "INV-2002")
    )
    assert (applied, reapplied) == (True, False) and first == again
    other_thread = IdempotencyKey("thread-2", "call_refund_0")  # fake models reuse call ids across threads
    with pytest.raises(AccountError, match="no captured payment left"):
        db.apply_once(other_thread, "issue_refund", {}, refund_effect("alice", "INV-2002"))
    assert count_refunds(db) == 1


@pytest.mark.postgres
def test_a_replay_that_finds_the_work_done_answers_the_first_result_on_postgres(pg_db: AccountsDB) -> None:
    """The other interleaving of a race: the replay checks the key before the first commits, but reads the
    invoice after, so its own refund is refused; it answers with the first one's result, not that error."""
    key = IdempotencyKey("race", "call_refund_0")
    replay_checked, first_committed = threading.Event(), threading.Event()

    def late_effect(session: Session, value: str) -> str:
        replay_checked.set()
        assert first_committed.wait(10)
        return actions.refund(session, "alice", "INV-2001", None, value)

    with ThreadPoolExecutor(1) as pool:
        replay = pool.submit(pg_db.apply_once, key, "issue_refund", {}, late_effect)
        assert replay_checked.wait(10)
        first = pg_db.apply_once(key, "issue_refund", {}, refund_effect("alice", "INV-2001"))
        first_committed.set()
        assert replay.result(timeout=10) == (first[0], False)
    assert first[1] is True and count_refunds(pg_db) == 1


@pytest.mark.postgres
def test_racing_replays_apply_once_on_postgres(pg_db: AccountsDB) -> None:
    """Both replays pass the key check together (the barrier proves it); the database lets one commit."""
    barrier = threading.Barrier(2, timeout=10)
    key = IdempotencyKey("race", "call_refund_0")

    def effect(session: Session, value: str) -> str:
        barrier.wait()
        return actions.refund(session, "alice", "INV-2001", None, value)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: pg_db.apply_once(key, "issue_refund", {}, effect), range(2)))
    assert sorted(applied for _, applied in results) == [False, True]
    assert results[0][0] == results[1][0]
    assert count_refunds(pg_db) == 1
