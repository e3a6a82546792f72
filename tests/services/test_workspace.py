"""The workspace store and its tools search real per-user rows, and never across users."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from loom.settings import Settings, get_settings
from nodes.tools.workspace import WORKSPACE_TOOLS
from services.stores.demo_workspace import DEMO_TODAY
from services.stores.workspace import (
    WorkspaceEmail,
    WorkspaceEvent,
    WorkspaceFile,
    WorkspaceMessage,
    WorkspaceStore,
    date_window,
)
from state.common import RunContext


@pytest.fixture
def store(tmp_path: Path) -> WorkspaceStore:
    store = WorkspaceStore(f"sqlite:///{tmp_path}/w.sqlite")
    store.create()
    store.seed_demo(Settings(data_dir=tmp_path).workspaces_dir, today=DEMO_TODAY)
    return store


def titles(rows: list[dict[str, object]], key: str) -> list[object]:
    return [row[key] for row in rows]


def test_calendar_search_for_ai_events_finds_the_workshop(store: WorkspaceStore) -> None:
    assert "AI Workshop" in titles(store.search_calendar("demo", "AI events"), "title")


def test_ai_strategy_is_found_in_every_source(store: WorkspaceStore) -> None:
    files = store.search_files("demo", "AI Strategy")
    assert files[0]["path"] == "strategy/AI_Strategy.md"
    assert "reports/Quarterly_Report_Q3.md" in titles(files, "path")
    assert all("snippet" in f and "name" in f for f in files)
    assert "Q3 Results" in titles(store.search_emails("demo", "AI Strategy"), "subject")
    assert "AI Strategy review" in titles(store.search_calendar("demo", "AI Strategy"), "title")
    assert any("AI Strategy" in str(m) for m in titles(store.search_messages("demo", "AI Strategy"), "message"))


def test_a_date_window_keeps_only_its_rows_in_date_order(store: WorkspaceStore) -> None:
    window, words = date_window("meetings this week", date(2026, 10, 7))  # a Wednesday
    assert window is not None and window.view() == {"label": "this week", "from": "2026-10-05", "to": "2026-10-11"}
    rows = store.search_calendar("demo", words, window=window)
    assert titles(rows, "title") == ["AI Workshop", "Team Standup", "Atlas design review", "1:1 with Jane"]
    next_week, topic = date_window("AI events next week", date(2026, 10, 7))
    assert titles(store.search_calendar("demo", topic, window=next_week), "title") == ["AI Strategy review"]


@pytest.mark.parametrize(
    ("query", "today", "span"),
    [
        ("standup tomorrow", date(2026, 12, 31), ("2027-01-01", "2027-01-01")),
        ("emails from last month", date(2026, 1, 15), ("2025-12-01", "2025-12-31")),
        ("next month", date(2026, 12, 2), ("2027-01-01", "2027-01-31")),
        ("what happened yesterday", date(2026, 3, 1), ("2026-02-28", "2026-02-28")),
        ("last week", date(2026, 10, 5), ("2026-09-28", "2026-10-04")),
    ],
)
def test_date_windows_cross_month_and_year_ends(query: str, today: date, span: tuple[str, str]) -> None:
    window, _ = date_window(query, today)
    assert window is not None and (window.view()["from"], window.view()["to"]) == span


def test_a_query_without_a_date_has_no_window() -> None:
    assert date_window("AI events", date(2026, 10, 7)) == (None, "AI events")


def test_results_are_json_with_iso_dates(store: WorkspaceStore) -> None:
    event = next(e for e in store.search_calendar("demo", "standup") if e["title"] == "Team Standup")
    assert event["starts_at"] == "2026-10-06T09:30:00"
    json.dumps(store.search_emails("demo", "") + store.search_files("demo", "sales"))


def test_users_never_see_each_others_rows(store: WorkspaceStore) -> None:
    for query in ["AI Strategy", "AI", "private", "Ethics Board", "legal", ""]:
        demo = json.dumps(
            [
                store.search_files("demo", query, 50),
                store.search_emails("demo", query, 50),
                store.search_calendar("demo", query, 50),
                store.search_messages("demo", query, 50),
            ]
        )
        assert "Ethics Board" not in demo and "legal" not in demo.lower() and "alice" not in demo.lower()
    alice = json.dumps([store.search_calendar("alice", "AI", 50), store.search_messages("alice", "", 50)])
    assert "AI Ethics Board (private)" in alice
    assert "AI Workshop" not in alice and "Did you check the new PR?" not in alice
    assert "AI_Strategy_legal_review.md" in titles(store.search_files("alice", "AI Strategy"), "name")
    assert "strategy/AI_Strategy.md" not in titles(store.search_files("alice", "AI Strategy", 50), "path")


def test_empty_query_returns_most_recent_rows(store: WorkspaceStore) -> None:
    emails = store.search_emails("demo", "", limit=3)
    assert len(emails) == 3
    assert [e["sent_at"] for e in emails] == sorted((e["sent_at"] for e in emails), reverse=True)
    assert emails[0]["subject"] == "Scheduled maintenance this weekend"
    assert store.search_messages("demo", "?!  ...") == store.search_messages("demo", "")


FTS_SYNTAX = ['"AND OR (*', "NOT", 'AI" OR "x', "a AND (b OR", "col:umn ^ - + {}", "*", "NEAR(a b)", "ünïcødé's"]


@pytest.mark.parametrize("query", FTS_SYNTAX)
def test_fts_syntax_in_a_query_does_not_raise(store: WorkspaceStore, query: str) -> None:
    for search in (store.search_files, store.search_emails, store.search_calendar, store.search_messages):
        assert isinstance(search("demo", query), list)


def test_a_dropped_in_file_becomes_searchable_and_edits_are_reindexed(store: WorkspaceStore, tmp_path: Path) -> None:
    workspaces = Settings(data_dir=tmp_path).workspaces_dir
    assert store.search_files("demo", "zebrafish") == []
    note = workspaces / "demo" / "inbox" / "lab_notes.md"
    note.parent.mkdir(parents=True)
    note.write_text("Zebrafish trial results look promising.", encoding="utf-8")
    (workspaces / "demo" / "photo.png").write_bytes(b"\x89PNG zebrafish")
    assert store.index_user_files("demo", workspaces) == 1
    assert store.index_user_files("demo", workspaces) == 0  # unchanged: skipped by mtime
    assert titles(store.search_files("demo", "zebrafish"), "path") == ["inbox/lab_notes.md"]
    assert store.search_files("alice", "zebrafish") == []

    note.write_text("Axolotl trial replaces the earlier one.", encoding="utf-8")
    os.utime(note, (1_900_000_000, 1_900_000_000))
    assert store.index_user_files("demo", workspaces) == 1
    assert store.search_files("demo", "zebrafish") == []
    assert titles(store.search_files("demo", "axolotl"), "path") == ["inbox/lab_notes.md"]

    note.unlink()
    store.index_user_files("demo", workspaces)
    assert store.search_files("demo", "axolotl") == []


def test_seeding_twice_does_not_duplicate(store: WorkspaceStore, tmp_path: Path) -> None:
    def counts() -> list[int]:
        with Session(store.engine) as session:
            models = (WorkspaceFile, WorkspaceEmail, WorkspaceEvent, WorkspaceMessage)
            return [session.scalar(select(func.count()).select_from(m)) or 0 for m in models]

    before = counts()
    store.create()
    store.seed_demo(Settings(data_dir=tmp_path).workspaces_dir)
    assert counts() == before
    assert before[0] >= 6 and all(n >= 6 for n in before[1:])


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LOOM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LOOM_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def call_tool(name: str, args: dict[str, object], user_id: str) -> dict[str, object]:
    graph = StateGraph(MessagesState, context_schema=RunContext)
    graph.add_node("tools", ToolNode(WORKSPACE_TOOLS))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    call = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "call-1"}])
    result = graph.compile().invoke({"messages": [call]}, context=RunContext(user_id=user_id))
    reply = result["messages"][-1]
    assert isinstance(reply, ToolMessage) and reply.status == "success"
    payload: dict[str, object] = json.loads(str(reply.content))
    return payload


def test_tools_search_only_the_context_users_data(data_dir: Path) -> None:
    alice = call_tool("search_calendar", {"query": "AI events"}, "alice")
    assert alice["source"] == "calendar" and alice["query"] == "AI events"
    assert titles(alice["results"], "title") == ["AI Ethics Board (private)"]  # type: ignore[arg-type]

    demo = call_tool("search_calendar", {"query": "AI events", "limit": 5}, "demo")
    assert "AI Workshop" in titles(demo["results"], "title")  # type: ignore[arg-type]
    assert "Ethics" not in json.dumps(demo)


def test_the_seeds_meetings_this_week_searches_this_weeks_dates(data_dir: Path) -> None:
    """Seed 000's "What meetings do I have this week?": a date window, not the words "this week"."""
    answer = call_tool("search_calendar", {"query": "What meetings do I have this week?"}, "demo")
    monday = date.today() - timedelta(days=date.today().weekday())
    sunday = monday + timedelta(days=6)
    window = {"label": "this week", "from": monday.isoformat(), "to": sunday.isoformat(), "topic": ""}
    assert answer["window"] == window
    events: Any = answer["results"]
    assert all(monday.isoformat() <= event["starts_at"][:10] <= sunday.isoformat() for event in events)


@pytest.mark.parametrize(
    "today",
    [date(2027, 3, 1), date(2027, 2, 28), date(2026, 12, 31), date(2027, 6, 15), date(2027, 8, 22), date(2028, 1, 9)],
)
def test_demo_data_is_dated_around_the_day_it_is_created(tmp_path: Path, today: date) -> None:
    """Seed 000's relative questions find entries on any day: the demo dates move with the seeding day."""
    store = WorkspaceStore(f"sqlite:///{tmp_path}/w.sqlite")
    store.create()
    store.seed_demo(Settings(data_dir=tmp_path).workspaces_dir, today=today)

    def found(search: Any, question: str, key: str) -> list[str]:
        window, words = date_window(question, today)
        return [row[key][:10] for row in search("demo", words, 10, window)]

    tomorrow = (today + timedelta(days=1)).isoformat()
    assert tomorrow in found(store.search_calendar, "What is on tomorrow?", "starts_at")
    monday = today - timedelta(days=today.weekday())
    this_week = found(store.search_calendar, "What meetings do I have this week?", "starts_at")
    assert this_week and all(monday.isoformat() <= day <= (monday + timedelta(days=6)).isoformat() for day in this_week)
    last_month = (today.replace(day=1) - timedelta(days=1)).isoformat()[:7]
    emails = found(store.search_emails, "emails from last month", "sent_at")
    assert emails and all(day.startswith(last_month) for day in emails)
    standup = next(e for e in store.search_calendar("demo", "standup") if e["title"] == "Team Standup")
    assert standup["starts_at"] == f"{today.isoformat()}T09:30:00"


def test_search_files_tool_indexes_new_files_first(data_dir: Path) -> None:
    assert call_tool("search_emails", {"query": "Policy Updates"}, "demo")["results"]
    (data_dir / "workspaces" / "demo" / "kiwi.txt").write_text("Kiwi harvest forecast", encoding="utf-8")
    found = call_tool("search_files", {"query": "kiwi"}, "demo")
    assert found["source"] == "files"
    assert titles(found["results"], "path") == ["kiwi.txt"]  # type: ignore[arg-type]
    assert call_tool("search_messages", {"query": "kiwi"}, "demo")["results"] == []


@pytest.mark.postgres
def test_postgres_search(postgres_schema_url: str, tmp_path: Path) -> None:
    store = WorkspaceStore(postgres_schema_url)
    try:
        store.create()
        store.create()
        workspaces = Settings(data_dir=tmp_path).workspaces_dir
        store.seed_demo(workspaces)
        store.seed_demo(workspaces)
        assert store.index_user_files("demo", workspaces) == 0  # mtimes round-trip through timestamp columns
        with store.engine.connect() as connection:
            assert connection.scalar(text("SELECT current_schema()")).startswith("loom_test_")
            assert connection.scalar(text("SELECT count(*) FROM workspace_events WHERE user_id = 'demo'")) == 9
        assert "AI Workshop" in titles(store.search_calendar("demo", "AI events"), "title")
        assert "strategy/AI_Strategy.md" in titles(store.search_files("demo", "AI Strategy"), "path")
        assert "Q3 Results" in titles(store.search_emails("demo", "AI Strategy"), "subject")
        assert store.search_messages("demo", "AI Strategy")
        assert "Ethics" not in json.dumps(store.search_calendar("demo", "AI Ethics Board", 50))
        assert titles(store.search_calendar("alice", "AI"), "title") == ["AI Ethics Board (private)"]
        assert len(store.search_emails("demo", '"AND OR (*')) <= 10
        assert len(store.search_emails("demo", "", limit=2)) == 2
    finally:
        store.engine.dispose()
