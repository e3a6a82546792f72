"""Seed rows for the demo account database, one customer per demo Loom user.

``demo`` is locked out after a declined card (the "my payment failed" story); ``alice`` is a
customer in good standing whose latest invoice is paid (the "refund my last invoice" story).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

CUSTOMERS: list[dict[str, Any]] = [
    {
        "id": "cus_demo",
        "user_id": "demo",
        "name": "Demo User",
        "email": "demo@example.com",
        "phone": "+1 555 0100",
        "status": "suspended",
        "status_reason": "Dashboard access suspended on 2026-10-05: payment for INV-1003 failed twice.",
        "subscription": {
            "id": "sub_demo",
            "plan": "pro",
            "status": "past_due",
            "monthly_price_cents": 4900,
            "started_at": datetime(2026, 3, 1),
            "canceled_at": None,
        },
        "invoices": [
            {
                "id": "INV-1001",
                "description": "Pro plan, August 2026",
                "amount_cents": 4900,
                "status": "paid",
                "issued_at": datetime(2026, 8, 1),
                "payments": [{"amount_cents": 4900, "status": "succeeded", "created_at": datetime(2026, 8, 1, 6)}],
            },
            {
                "id": "INV-1002",
                "description": "Pro plan, September 2026",
                "amount_cents": 4900,
                "status": "paid",
                "issued_at": datetime(2026, 9, 1),
                "payments": [{"amount_cents": 4900, "status": "succeeded", "created_at": datetime(2026, 9, 1, 6)}],
            },
            {
                "id": "INV-1003",
                "description": "Pro plan, October 2026",
                "amount_cents": 4900,
                "status": "open",
                "issued_at": datetime(2026, 10, 1),
                "payments": [
                    {
                        "amount_cents": 4900,
                        "status": "failed",
                        "failure_reason": "card_declined: insufficient funds (Visa ending 4242)",
                        "created_at": datetime(2026, 10, 1, 6),
                    },
                    {
                        "amount_cents": 4900,
                        "status": "failed",
                        "failure_reason": "card_declined: insufficient funds (Visa ending 4242)",
                        "created_at": datetime(2026, 10, 4, 6),
                    },
                ],
            },
        ],
        "tickets": [
            {
                "id": "T-501",
                "subject": "How do I export reports to CSV?",
                "status": "closed",
                "created_at": datetime(2026, 6, 12, 10),
            },
        ],
    },
    {
        "id": "cus_alice",
        "user_id": "alice",
        "name": "Alice Martin",
        "email": "alice@example.com",
        "phone": "+1 555 0199",
        "status": "active",
        "status_reason": "",
        "subscription": {
            "id": "sub_alice",
            "plan": "business",
            "status": "active",
            "monthly_price_cents": 9900,
            "started_at": datetime(2025, 11, 15),
            "canceled_at": None,
        },
        "invoices": [
            {
                "id": f"INV-20{n:02d}",
                "description": f"Business plan, {month} 2026",
                "amount_cents": 9900,
                "status": "paid",
                "issued_at": datetime(2026, n + 7, 15),
                "payments": [{"amount_cents": 9900, "status": "succeeded", "created_at": datetime(2026, n + 7, 15, 6)}],
            }
            for n, month in ((1, "August"), (2, "September"), (3, "October"))
        ],
        "tickets": [],
    },
]

SERVICE_STATUS: list[tuple[str, str, str]] = [
    ("api", "operational", ""),
    ("dashboard", "operational", ""),
    ("billing", "degraded", "Some card payments are declined by the processor; retries after 2026-10-07 succeed."),
    ("email", "operational", ""),
]
