"""Webhook notifications when a support request is escalated or resolved (seed 002's NotificationService).

Delivery is at least once: timeouts, dropped connections, 429 and 5xx answers are retried with
exponential backoff, and every attempt carries the same ``event_id`` (also sent as
``Idempotency-Key``) so a receiver can drop duplicates. A webhook that stays down never fails the
support run; the caller gets ``False`` and a warning is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from loom.settings import Settings, get_settings

log = logging.getLogger(__name__)

SupportEvent = Literal["support.request.escalated", "support.request.resolved"]


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


async def notify(
    event: SupportEvent, event_id: str, request: Mapping[str, Any], settings: Settings | None = None
) -> bool:
    """POST the event to ``support_webhook_url``; True once a 2xx came back, False if unset or undelivered."""
    settings = settings or get_settings()
    url = settings.support_webhook_url
    if not url:
        return False
    payload = {"event": event, "event_id": event_id, "sent_at": datetime.now(UTC).isoformat(), "request": dict(request)}
    headers = {"Idempotency-Key": event_id, "X-Loom-Event": event}
    problem = ""
    async with httpx.AsyncClient(timeout=settings.support_webhook_timeout_s) as client:
        for attempt in range(settings.support_webhook_retries + 1):
            if attempt:
                await asyncio.sleep(settings.support_webhook_backoff_s * 2 ** (attempt - 1))
            try:
                response = await client.post(url, json=payload, headers=headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return True
            problem = f"HTTP {response.status_code}"
            if not _retryable(response.status_code):
                break
    log.warning("support webhook %s for %s not delivered: %s", event, event_id, problem)
    return False
