"""The support_requests table: idempotent writes, per-user reads, analytics in SQL; webhook retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from loom.settings import Settings
from services.stores.support import RequestConflict, SupportStore
from services.webhooks import notify
from state.support import SupportRequest, Turn
from tests.fixtures.webhook_receiver import WebhookReceiver

T0 = datetime(2026, 10, 6, 9, 0, 0)


def support_request(rid: str, user: str = "demo", **changes: object) -> SupportRequest:
    base = SupportRequest(
        request_id=rid,
        user_id=user,
        initial_message="help",
        category="billing",
        priority="medium",
        status="new",
        current_agent="billing",
        escalation_reason=None,
        resolution_summary=None,
        created_at=T0.isoformat(),
        updated_at=T0.isoformat(),
    )
    return {**base, **changes}  # type: ignore[typeddict-item]


def turn(after_seconds: float, agent: str = "billing") -> Turn:
    at = T0 + timedelta(seconds=after_seconds)
    return Turn(timestamp=at.isoformat(), agent=agent, user_message="help", agent_response="answer")  # type: ignore[typeddict-item]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> SupportStore:
    return SupportStore(f"sqlite:///{tmp_path}/support.sqlite")


@pytest.fixture
def pg_store(postgres_schema_url: str) -> Iterator[SupportStore]:
    store = SupportStore(postgres_schema_url)
    yield store
    store.engine.dispose()


def populate(store: SupportStore) -> None:
    """Three of demo's requests (answered after 30 s, 90 s and never) and one of alice's."""
    store.open_request(support_request("r1"))
    store.record_turn(support_request("r1", status="in_progress"), turn(30), seq=0)
    store.record_turn(support_request("r1", status="in_progress"), turn(30), seq=0)  # a replay changes nothing
    escalated = support_request(
        "r2", category="technical", priority="critical", status="escalated", current_agent="escalation"
    )
    store.open_request(support_request("r2"))
    store.record_turn(escalated, turn(90, "escalation"), seq=0)
    store.open_request(support_request("r3", category=None, status="new"))
    store.record_approval("r1", "call_1", "issue_refund", {"invoice_id": "INV-1"}, "pending", "", T0)
    store.record_approval("r1", "call_1", "issue_refund", {"invoice_id": "INV-1"}, "approve", "", T0)
    store.record_approval("r1", "call_1", "issue_refund", {"invoice_id": "INV-1"}, "pending", "", T0)  # replayed ask
    store.record_approval("r2", "call_2", "cancel_subscription", {"reason": "x"}, "reject", "not allowed", T0)
    store.open_request(support_request("a1", user="alice", priority="low"))
    store.record_turn(support_request("a1", user="alice", priority="low", status="in_progress"), turn(1000), seq=0)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_analytics_are_computed_per_user(backend: str, request: pytest.FixtureRequest) -> None:
    store: SupportStore = request.getfixturevalue(f"{'pg' if backend == 'postgres' else 'sqlite'}_store")
    populate(store)
    stats = store.analytics("demo")
    assert stats["total_requests"] == 3
    assert stats["by_status"] == {"new": 1, "in_progress": 1, "escalated": 1, "resolved": 0}
    assert stats["by_category"] == {"billing": 1, "technical": 1}
    assert stats["by_priority"] == {"medium": 2, "critical": 1}
    assert stats["mean_first_response_seconds"] == pytest.approx(60.0)
    assert stats["escalation_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert stats["approvals"] == {"pending": 0, "approve": 1, "edit": 0, "reject": 1}
    assert store.analytics("alice")["mean_first_response_seconds"] == pytest.approx(1000.0)
    assert store.analytics("nobody")["total_requests"] == 0


def test_reads_are_scoped_and_resolution_happens_once(sqlite_store: SupportStore) -> None:
    populate(sqlite_store)
    assert [r["request_id"] for r in sqlite_store.list_requests("demo", {"status": "escalated"})] == ["r2"]
    assert sqlite_store.get_request("alice", "r1") is None
    detail = sqlite_store.get_request("demo", "r1")
    assert detail is not None and len(detail["turns"]) == 1 and detail["approvals"][0]["decision"] == "approve"
    resolved = sqlite_store.resolve("demo", "r2", "Patched the integration.", T0 + timedelta(hours=1))
    assert resolved is not None and resolved["status"] == "resolved" and resolved["escalated_at"] is not None
    with pytest.raises(RequestConflict):
        sqlite_store.resolve("demo", "r2", "again", T0)
    assert sqlite_store.resolve("alice", "r1", "not hers", T0) is None
    assert sqlite_store.analytics("demo")["escalation_rate"] == pytest.approx(1 / 3, abs=1e-4)  # ever escalated


def webhook_settings(url: str, retries: int = 3) -> Settings:
    return Settings(support_webhook_url=url, support_webhook_retries=retries, support_webhook_backoff_s=0)


async def test_webhook_is_retried_until_delivered_with_one_event_id() -> None:
    with WebhookReceiver(fail_first=2) as receiver:
        assert await notify(
            "support.request.escalated", "r1:escalated:0", {"request_id": "r1"}, webhook_settings(receiver.url)
        )
    assert receiver.attempts == 3
    (call,) = receiver.calls
    assert call["body"]["event"] == "support.request.escalated" and call["body"]["request"] == {"request_id": "r1"}
    assert call["headers"]["Idempotency-Key"] == "r1:escalated:0"


async def test_webhook_gives_up_on_client_errors_and_when_unreachable() -> None:
    with WebhookReceiver(fail_first=5, fail_status=400) as receiver:
        assert not await notify("support.request.resolved", "e", {}, webhook_settings(receiver.url))
    assert receiver.attempts == 1  # a 4xx will not get better by retrying
    with WebhookReceiver() as closed:
        url = closed.url
    assert not await notify("support.request.resolved", "e", {}, webhook_settings(url, retries=1))
    assert not await notify("support.request.resolved", "e", {}, Settings(support_webhook_url=None))
