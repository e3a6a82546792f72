"""The work agent's search tools: the user's own files, emails, calendar and messages.

Each tool searches only for the user in ``runtime.context``; the model chooses the query, never
whose data is searched. Results are JSON so the model can quote names, dates and paths exactly.
The database calls block, which is fine: LangGraph's ToolNode runs sync tools in a thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from sqlalchemy.exc import SQLAlchemyError

from loom.settings import get_settings
from services.stores.workspace import DateWindow, WorkspaceStore, date_window, get_workspace_store, search_terms
from state.common import RunContext

Search = Callable[[WorkspaceStore, str, str, int, DateWindow | None], list[dict[str, Any]]]


def _run(source: str, search: Search, query: str, runtime: ToolRuntime[RunContext], limit: int) -> str:
    """A failed search is reported to the model as data, so it can tell the user instead of crashing the turn.

    "this week", "tomorrow", "last month"… in the query become a date window, not words to match.
    """
    user_id = (runtime.context or RunContext()).user_id
    window, words = date_window(query, date.today())
    answer: dict[str, Any] = {"source": source, "query": query}
    if window:
        answer["window"] = {**window.view(), "topic": " ".join(search_terms(words))}  # what is matched in it
    try:
        answer["results"] = search(get_workspace_store(), user_id, words, limit, window)
    except (SQLAlchemyError, OSError) as exc:
        answer.update(results=[], error=f"search failed: {exc}")
    return json.dumps(answer, ensure_ascii=False)


@tool
def search_files(query: str, runtime: ToolRuntime[RunContext], limit: int = 10) -> str:
    """Search the user's documents (reports, plans, notes, CSV data) by words they contain.

    Use for "find the file about X" or to locate a CSV before charting it. Returns each file's
    name, its path in the workspace and a snippet around the match. An empty query lists recent files.
    """

    def search(
        store: WorkspaceStore, user_id: str, text: str, count: int, window: DateWindow | None
    ) -> list[dict[str, Any]]:
        store.index_user_files(user_id, get_settings().workspaces_dir)  # files the user just dropped in
        return store.search_files(user_id, text, count, window)

    return _run("files", search, query, runtime, limit)


@tool
def search_emails(query: str, runtime: ToolRuntime[RunContext], limit: int = 10) -> str:
    """Search the user's email by sender, recipient, subject or body text.

    Use for "emails from the CEO", "what did HR send about policy". An empty query lists the newest emails.
    """
    return _run("emails", WorkspaceStore.search_emails, query, runtime, limit)


@tool
def search_calendar(query: str, runtime: ToolRuntime[RunContext], limit: int = 10) -> str:
    """Search the user's calendar events by title, description or location.

    Use for meetings, workshops and schedules ("AI events", "standup", "meetings this week"). Times are
    ISO local times. today / tomorrow / this week / next month… limit the dates. An empty query lists
    the latest events.
    """
    return _run("calendar", WorkspaceStore.search_calendar, query, runtime, limit)


@tool
def search_messages(query: str, runtime: ToolRuntime[RunContext], limit: int = 10) -> str:
    """Search the user's chat messages (Slack/Teams style) by sender, channel or text.

    Use for "messages from Jane", "anything in #deployments". An empty query lists the newest messages.
    """
    return _run("messages", WorkspaceStore.search_messages, query, runtime, limit)


WORKSPACE_TOOLS = [search_files, search_emails, search_calendar, search_messages]
