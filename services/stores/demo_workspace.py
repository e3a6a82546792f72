"""Demo workspace data, seeded into the workspace store so a fresh install has something to search.

Two users on purpose: ``alice`` holds rows that mention the same topics as ``demo`` (AI Strategy,
AI events), so tests can prove that one user's search never returns another user's rows.
Dates are written as naive ISO strings around ``DEMO_TODAY`` (Tuesday 6 October 2026), and
:func:`dated_for` moves them by whole days so that ``DEMO_TODAY`` becomes the day the data is
created: "this week", "tomorrow" and "last month" then find entries whatever the date.
There are entries yesterday, today, tomorrow, later this week, 8, 20 and 35 days back (so "last
month" is never empty) and weeks ahead. File paths are relative to the user's workspace folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from typing_extensions import TypedDict

DEMO_TODAY = date(2026, 10, 6)
"""The day the demo data is written around; seeding moves it to the real day."""


def dated_for(row: Mapping[str, Any], today: date) -> dict[str, Any]:
    """``row`` with every ``*_at`` timestamp moved by ``today - DEMO_TODAY`` days, parsed to ``datetime``."""
    shift = timedelta(days=(today - DEMO_TODAY).days)
    return {k: datetime.fromisoformat(str(v)) + shift if k.endswith("_at") else v for k, v in row.items()}


class DemoEmail(TypedDict):
    sender: str
    recipient: str
    subject: str
    body: str
    sent_at: str


class DemoEvent(TypedDict):
    title: str
    description: str
    location: str
    starts_at: str
    ends_at: str


class DemoMessage(TypedDict):
    sender: str
    channel: str
    body: str
    sent_at: str


class DemoUser(TypedDict):
    name: str
    files: dict[str, str]
    emails: list[DemoEmail]
    events: list[DemoEvent]
    messages: list[DemoMessage]


_AI_STRATEGY = """# AI Strategy 2026-2027

## Why
Customers expect faster answers and smarter products. Our AI strategy focuses on three bets
that compound: internal productivity, AI features in the product, and a shared data platform.

## Pillars
1. **Assistants for every team** - roll out a workspace assistant to Sales, Support and Finance.
2. **AI in the product** - ship smart search and summaries in the customer portal by Q1 2027.
3. **Data foundation** - one governed warehouse; no model trains on customer data without consent.

## Governance
An AI review board meets monthly. Every use case gets a risk rating before launch.

## Milestones
- Oct 2026: AI Workshop for team leads
- Oct 2026: AI Strategy review with the leadership team
- Dec 2026: first assistant pilot live in Support
"""

_Q3_REPORT = """# Quarterly Report - Q3 2026

## Highlights
- Revenue: $405,500 for the quarter, up 12% on Q2.
- Units sold: 1,113 (July 340, August 372, September 401).
- Customer churn fell to 2.1%.

## Commentary
September was our strongest month. The support pilot that uses our AI strategy's first assistant
cut average response time by 30%. Hiring stayed flat; two engineering roles open for Q4.

## Risks
Supplier lead times for hardware bundles grew to six weeks.

See data/sales_q3.csv for the monthly figures.
"""

_SALES_Q3 = """month,revenue,units
July,120000,340
August,135000,372
September,150500,401
"""

_STANDUP_NOTES = """Team meeting notes - 2026-10-06

Attendees: Demo User, Jane Park, Marco Rossi, Priya Shah

- Project Atlas: ingestion service in review (Jane's PR #482).
- Deployment of v2.8 done last night; no incidents.
- Priya to circulate the AI Strategy deck before the review on 14 Oct.
- Action: Marco to update the Q4 hiring plan.
"""

_ATLAS_PLAN = """# Project Atlas - Plan

Goal: replace the nightly batch import with a streaming ingestion service.

Timeline
- Sprint 1 (Oct): event schema, ingestion service skeleton
- Sprint 2 (Nov): backfill tool, dashboards
- Sprint 3 (Dec): cut-over and decommission the batch job

Owner: Jane Park. Stakeholders: Data, Support, Finance.
"""

_REMOTE_POLICY = """Remote Work Policy (updated October 2026)

Employees may work remotely up to three days a week with their manager's agreement.
Core collaboration hours are 10:00-15:00 local time.
Equipment requests go through the IT portal; expenses above $500 need approval.
"""

_ONBOARDING = """Onboarding checklist for new engineers

[ ] Laptop and accounts (IT portal)
[ ] Read the Remote Work Policy
[ ] Pair with a buddy for the first deployment
[ ] Join #engineering, #deployments and #general
"""

DEMO_USERS: dict[str, DemoUser] = {
    "demo": {
        "name": "Demo User",
        "files": {
            "strategy/AI_Strategy.md": _AI_STRATEGY,
            "reports/Quarterly_Report_Q3.md": _Q3_REPORT,
            "data/sales_q3.csv": _SALES_Q3,
            "notes/team_meeting_2026-10-06.md": _STANDUP_NOTES,
            "projects/Project_Atlas_Plan.md": _ATLAS_PLAN,
            "policies/Remote_Work_Policy.txt": _REMOTE_POLICY,
            "notes/onboarding_checklist.txt": _ONBOARDING,
        },
        "emails": [
            {
                "sender": "ceo@company.com",
                "recipient": "demo@company.com",
                "subject": "Q3 Results",
                "body": "Great job team! Q3 revenue came in at $405k, up 12% on last quarter. "
                "Our AI strategy is paying off: the support assistant pilot cut response times by 30%. "
                "Let's keep the momentum going into Q4.",
                "sent_at": "2026-10-02T08:15:00",
            },
            {
                "sender": "hr@company.com",
                "recipient": "demo@company.com",
                "subject": "Policy Updates",
                "body": "Please review the attached updates to the Remote Work Policy and the expense policy. "
                "The changes take effect on 1 November.",
                "sent_at": "2026-10-01T11:40:00",
            },
            {
                "sender": "jane.park@company.com",
                "recipient": "demo@company.com",
                "subject": "PR #482 ready for review",
                "body": "Hi! The Atlas ingestion service PR is ready. Could you take a look before Thursday?",
                "sent_at": "2026-10-05T16:05:00",
            },
            {
                "sender": "events@company.com",
                "recipient": "demo@company.com",
                "subject": "Invitation: AI Workshop",
                "body": "You're invited to the AI Workshop on 5 October, 10:00-12:00 in the Innovation Lab. "
                "Hands-on session on prompt design and evaluating assistants.",
                "sent_at": "2026-09-28T09:00:00",
            },
            {
                "sender": "finance@company.com",
                "recipient": "demo@company.com",
                "subject": "Q4 budget request deadline",
                "body": "Reminder: Q4 budget requests, including any AI pilot spend, are due by 15 October.",
                "sent_at": "2026-10-03T10:30:00",
            },
            {
                "sender": "it@company.com",
                "recipient": "demo@company.com",
                "subject": "Scheduled maintenance this weekend",
                "body": "The VPN and email gateway will be unavailable on Saturday 10 October from 22:00 to 02:00.",
                "sent_at": "2026-10-07T14:20:00",
            },
            {
                "sender": "finance@company.com",
                "recipient": "demo@company.com",
                "subject": "Expense report approved",
                "body": "Your August expense report (travel to the data platform summit) has been approved.",
                "sent_at": "2026-09-16T09:10:00",
            },
            {
                "sender": "jane.park@company.com",
                "recipient": "demo@company.com",
                "subject": "Atlas kickoff notes",
                "body": "Notes from the Project Atlas kickoff: scope, owners and the three sprints.",
                "sent_at": "2026-09-01T17:45:00",
            },
        ],
        "events": [
            {
                "title": "AI Workshop",
                "description": "Hands-on workshop on prompt design and evaluating assistants.",
                "location": "Innovation Lab",
                "starts_at": "2026-10-05T10:00:00",
                "ends_at": "2026-10-05T12:00:00",
            },
            {
                "title": "Team Standup",
                "description": "Daily sync: blockers, deployments, priorities.",
                "location": "Zoom",
                "starts_at": "2026-10-06T09:30:00",
                "ends_at": "2026-10-06T09:45:00",
            },
            {
                "title": "Atlas design review",
                "description": "Review of the Atlas dashboards and the backfill tool design.",
                "location": "Room 2A",
                "starts_at": "2026-10-07T11:00:00",
                "ends_at": "2026-10-07T12:00:00",
            },
            {
                "title": "1:1 with Jane",
                "description": "Project Atlas progress and career goals.",
                "location": "Room 3B",
                "starts_at": "2026-10-08T15:00:00",
                "ends_at": "2026-10-08T15:30:00",
            },
            {
                "title": "Quarterly business review",
                "description": "Q3 numbers with Finance before the quarter closes.",
                "location": "Boardroom",
                "starts_at": "2026-09-16T10:00:00",
                "ends_at": "2026-09-16T11:30:00",
            },
            {
                "title": "AI Strategy review",
                "description": "Leadership review of the AI strategy deck and 2027 milestones.",
                "location": "Boardroom",
                "starts_at": "2026-10-14T14:00:00",
                "ends_at": "2026-10-14T15:00:00",
            },
            {
                "title": "Q4 Planning",
                "description": "Quarter planning with Finance and Engineering leads.",
                "location": "Boardroom",
                "starts_at": "2026-10-20T13:00:00",
                "ends_at": "2026-10-20T16:00:00",
            },
            {
                "title": "Product launch retrospective",
                "description": "What went well and what to change after the v2.8 launch.",
                "location": "Zoom",
                "starts_at": "2026-11-03T11:00:00",
                "ends_at": "2026-11-03T12:00:00",
            },
            {
                "title": "End-of-year all hands",
                "description": "Company results, awards and plans for 2027.",
                "location": "Main hall",
                "starts_at": "2026-12-10T16:00:00",
                "ends_at": "2026-12-10T18:00:00",
            },
        ],
        "messages": [
            {
                "sender": "Jane",
                "channel": "#engineering",
                "body": "Did you check the new PR?",
                "sent_at": "2026-10-06T10:12:00",
            },
            {
                "sender": "DevOps",
                "channel": "#deployments",
                "body": "Deployment completed successfully.",
                "sent_at": "2026-10-06T01:03:00",
            },
            {
                "sender": "Priya",
                "channel": "#strategy",
                "body": "The AI Strategy deck draft is in strategy/ - comments before the review on the 14th, please.",
                "sent_at": "2026-10-07T09:48:00",
            },
            {
                "sender": "Marco",
                "channel": "direct",
                "body": "Can you send me the Q3 sales numbers by month?",
                "sent_at": "2026-10-07T13:25:00",
            },
            {
                "sender": "Tom",
                "channel": "#general",
                "body": "Lunch & learn on Friday: intro to our data warehouse. Pizza provided!",
                "sent_at": "2026-10-05T12:00:00",
            },
            {
                "sender": "SecurityBot",
                "channel": "#security",
                "body": "Reminder: rotate your API keys before 31 October.",
                "sent_at": "2026-10-04T08:00:00",
            },
        ],
    },
    "alice": {
        "name": "Alice Chen",
        "files": {
            "legal/AI_Strategy_legal_review.md": "# AI Strategy - legal review (confidential)\n\n"
            "Open questions on data consent and model licensing before the AI Strategy goes live.\n",
            "notes/alice_todo.txt": "Prepare AI Ethics Board agenda.\nReview vendor contracts.\n",
        },
        "emails": [
            {
                "sender": "legal@company.com",
                "recipient": "alice@company.com",
                "subject": "AI Strategy - confidential legal review",
                "body": "Alice, attached are our comments on the AI Strategy. Please do not forward.",
                "sent_at": "2026-10-04T17:30:00",
            },
        ],
        "events": [
            {
                "title": "AI Ethics Board (private)",
                "description": "Closed session on AI risk ratings and the AI Strategy.",
                "location": "Legal floor",
                "starts_at": "2026-10-07T16:00:00",
                "ends_at": "2026-10-07T17:00:00",
            },
        ],
        "messages": [
            {
                "sender": "Bob",
                "channel": "direct",
                "body": "Alice, the AI Strategy legal memo is ready for your eyes only.",
                "sent_at": "2026-10-05T18:02:00",
            },
        ],
    },
}
