"""Per-user workspace data (files, emails, calendar, messages) with real full-text search.

The work agent's tools answer from these tables, and every query is filtered by ``user_id`` so no
prompt can make one user's search return another user's rows. SQLite gets FTS5 external-content
tables kept in sync by triggers; PostgreSQL gets ``to_tsvector`` expressions behind GIN indexes.
User input never reaches the FTS parser as syntax: it is cut into word terms, each quoted.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    DateTime,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    select,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Mapped, Session, mapped_column

from loom.settings import Settings, get_settings
from services.paths import safe_id
from services.stores.db import Base, OnePerUrl, create_tables, lock_schema, make_engine
from services.stores.demo_workspace import DEMO_USERS, dated_for

TEXT_SUFFIXES = frozenset({".txt", ".md", ".csv"})
MAX_FILE_CHARS = 1_000_000
"""Text indexed per file; enough for documents, small enough that a stray dump can't bloat the index."""
MAX_LIMIT = 50
_TERM = re.compile(r"\w+")


class UserRow(Base):
    __abstract__ = True
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)


R = TypeVar("R", bound=UserRow)


class WorkspaceFile(UserRow):
    __tablename__ = "workspace_files"
    __table_args__ = (UniqueConstraint("user_id", "path"),)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(1024))
    content: Mapped[str] = mapped_column(Text)
    modified_at: Mapped[datetime] = mapped_column(DateTime)


class WorkspaceEmail(UserRow):
    __tablename__ = "workspace_emails"
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(DateTime)


class WorkspaceEvent(UserRow):
    __tablename__ = "workspace_events"
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(500), default="")
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime] = mapped_column(DateTime)


class WorkspaceMessage(UserRow):
    __tablename__ = "workspace_messages"
    sender: Mapped[str] = mapped_column(String(320))
    channel: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(DateTime)


SEARCHABLE: dict[str, tuple[str, ...]] = {
    "workspace_files": ("name", "path", "content"),
    "workspace_emails": ("sender", "recipient", "subject", "body"),
    "workspace_events": ("title", "description", "location"),
    "workspace_messages": ("sender", "channel", "body"),
}


def _sqlite_fts_ddl(name: str, columns: tuple[str, ...]) -> list[str]:
    fts, cols = f"{name}_fts", ", ".join(columns)
    new, old = ", ".join(f"new.{c}" for c in columns), ", ".join(f"old.{c}" for c in columns)
    insert = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new});"
    delete = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5({cols}, content='{name}', content_rowid='id', "
        "tokenize='porter unicode61')",
        f"CREATE TRIGGER IF NOT EXISTS {name}_ai AFTER INSERT ON {name} BEGIN {insert} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_ad AFTER DELETE ON {name} BEGIN {delete} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_au AFTER UPDATE ON {name} BEGIN {delete} {insert} END",
    ]


def _pg_document(columns: tuple[str, ...]) -> str:
    """One immutable expression, used by both the GIN index and the query so the index applies."""
    return "to_tsvector('english', " + " || ' ' || ".join(f"coalesce({c}, '')" for c in columns) + ")"


def _create_search_indexes(connection: Connection) -> None:
    """Raw DDL, because neither FTS5 tables nor expression GIN indexes have a SQLAlchemy model."""
    for name, columns in SEARCHABLE.items():
        if connection.dialect.name == "sqlite":
            statements = _sqlite_fts_ddl(name, columns)
        elif connection.dialect.name == "postgresql":
            statements = [f"CREATE INDEX IF NOT EXISTS {name}_fts_idx ON {name} USING gin (({_pg_document(columns)}))"]
        else:
            statements = []
        for statement in statements:
            connection.exec_driver_sql(statement)


@dataclass(frozen=True)
class DateWindow:
    """A span a query names ("this week"): rows dated in ``[start, end)`` match, in date order."""

    label: str
    start: datetime
    end: datetime

    def view(self) -> dict[str, str]:
        return {
            "label": self.label,
            "from": self.start.date().isoformat(),
            "to": (self.end - timedelta(days=1)).date().isoformat(),
        }


_WINDOW = re.compile(r"\b(today|tomorrow|yesterday|(this|next|last) (week|month))\b", re.IGNORECASE)


def date_window(query: str, today: date) -> tuple[DateWindow | None, str]:
    """The span a query names, and the query without those words; weeks start on Monday."""
    found = _WINDOW.search(query)
    if found is None:
        return None, query
    phrase = found.group(1).lower()
    shift = {"this": 0, "next": 1, "last": -1}.get((found.group(2) or "").lower(), 0)
    day = datetime.combine(today, datetime.min.time())
    if phrase in ("today", "tomorrow", "yesterday"):
        start = day + timedelta(days={"today": 0, "tomorrow": 1, "yesterday": -1}[phrase])
        end = start + timedelta(days=1)
    elif phrase.endswith("week"):
        start = day - timedelta(days=today.weekday()) + timedelta(weeks=shift)
        end = start + timedelta(weeks=1)
    else:
        first = day.replace(day=1)
        start = _add_months(first, shift)
        end = _add_months(start, 1)
    rest = " ".join((query[: found.start()] + " " + query[found.end() :]).split())
    return DateWindow(phrase, start, end), rest


def _add_months(first_of_month: datetime, months: int) -> datetime:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return first_of_month.replace(year=index // 12, month=index % 12 + 1)


GENERIC_WORDS = frozenset(
    {"a", "an", "the", "my", "our", "me", "i", "do", "did", "have", "has", "what", "which", "when", "who"}
    | {"any", "all", "about", "for", "from", "in", "on", "at", "to", "of", "and", "or", "is", "are", "with"}
    | {"this", "that", "there"}
    | {"please", "show", "find", "search", "list"}
    | {"calendar", "meeting", "meetings", "event", "events", "appointment", "appointments", "schedule"}
    | {"email", "emails", "mail", "message", "messages", "file", "files", "document", "documents"}
)
"""Words that name the kind of thing asked for, not what it is about: "meetings this week" has no topic."""


def search_terms(query: str) -> list[str]:
    """Topic words only: quotes, operators and parentheses a user types are never FTS syntax."""
    return [term for term in _TERM.findall(query.lower()) if term not in GENERIC_WORDS][:16]


def snippet(text: str, terms: list[str], width: int = 200) -> str:
    """A window of ``text`` around the first term found, so a model sees why a row matched."""
    flat = " ".join(text.split())
    hit = re.search(r"\b(?:" + "|".join(map(re.escape, terms)) + ")", flat, re.IGNORECASE) if terms else None
    start = max(0, hit.start() - width // 4) if hit else 0
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


def _iso(value: datetime) -> str:
    return value.isoformat()


class WorkspaceStore:
    """Search over one database; thread-safe, since LangGraph runs sync tools in a thread pool."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._index_lock = threading.Lock()

    def create(self) -> None:
        with self.engine.begin() as connection:
            create_tables(connection, WorkspaceFile, WorkspaceEmail, WorkspaceEvent, WorkspaceMessage)
            _create_search_indexes(connection)

    def seed_demo(self, workspaces_dir: Path, today: date | None = None) -> None:
        """Give each demo user their data once, dated around ``today``; a user who has rows is left alone."""
        today = today or date.today()
        with Session(self.engine) as session, session.begin():
            lock_schema(session.connection())  # two processes must not both seed a user
            for user_id, data in DEMO_USERS.items():
                if not self._has_rows(session, WorkspaceFile, user_id):
                    root = workspaces_dir / safe_id(user_id)
                    for relative, text in data["files"].items():
                        target = root / relative
                        if not target.exists():
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_text(text, encoding="utf-8")
                tables: list[tuple[type[UserRow], Sequence[Mapping[str, object]]]] = [
                    (WorkspaceEmail, data["emails"]),
                    (WorkspaceEvent, data["events"]),
                    (WorkspaceMessage, data["messages"]),
                ]
                for model, rows in tables:
                    if not self._has_rows(session, model, user_id):
                        session.add_all(model(user_id=user_id, **dated_for(row, today)) for row in rows)
        for user_id in DEMO_USERS:
            self.index_user_files(user_id, workspaces_dir)

    def index_user_files(self, user_id: str, workspaces_dir: Path) -> int:
        """Bring the index in line with the user's folder; returns how many files were (re)read."""
        root = (workspaces_dir / safe_id(user_id)).resolve()
        on_disk: dict[str, Path] = {}
        if root.is_dir():
            for path in root.rglob("*"):
                relative = path.relative_to(root)
                if (
                    path.suffix.lower() in TEXT_SUFFIXES
                    and not any(part.startswith(".") for part in relative.parts)
                    and path.is_file()
                    and path.resolve().is_relative_to(root)
                ):
                    on_disk[relative.as_posix()] = path
        changed = 0
        with self._index_lock, Session(self.engine) as session:
            query = select(WorkspaceFile).where(WorkspaceFile.user_id == user_id)
            indexed = {row.path: row for row in session.scalars(query)}
            for key, path in on_disk.items():
                try:
                    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
                    row = indexed.get(key)
                    if row is not None and row.modified_at == modified:
                        continue
                    with path.open(encoding="utf-8", errors="replace") as handle:
                        content = handle.read(MAX_FILE_CHARS)
                except OSError:  # unreadable or vanished mid-scan: skip it rather than fail every search
                    continue
                if row is None:
                    row = WorkspaceFile(user_id=user_id, name=path.name, path=key, modified_at=modified)
                    session.add(row)
                row.content, row.modified_at = content, modified
                changed += 1
            for key, row in indexed.items():
                if key not in on_disk:
                    session.delete(row)
            try:
                session.commit()
            except IntegrityError:  # another process indexed the same new file first; its copy is as good
                session.rollback()
                return 0
        return changed

    def search_files(
        self, user_id: str, query: str, limit: int = 10, window: DateWindow | None = None
    ) -> list[dict[str, Any]]:
        terms = search_terms(query)
        return [
            {"name": f.name, "path": f.path, "snippet": snippet(f.content, terms), "modified_at": _iso(f.modified_at)}
            for f in self._search(WorkspaceFile, WorkspaceFile.modified_at, user_id, terms, limit, window)
        ]

    def search_emails(
        self, user_id: str, query: str, limit: int = 10, window: DateWindow | None = None
    ) -> list[dict[str, Any]]:
        terms = search_terms(query)
        return [
            {
                "from": e.sender,
                "to": e.recipient,
                "subject": e.subject,
                "snippet": snippet(e.body, terms),
                "sent_at": _iso(e.sent_at),
            }
            for e in self._search(WorkspaceEmail, WorkspaceEmail.sent_at, user_id, terms, limit, window)
        ]

    def search_calendar(
        self, user_id: str, query: str, limit: int = 10, window: DateWindow | None = None
    ) -> list[dict[str, Any]]:
        return [
            {
                "title": e.title,
                "description": e.description,
                "location": e.location,
                "starts_at": _iso(e.starts_at),
                "ends_at": _iso(e.ends_at),
            }
            for e in self._search(WorkspaceEvent, WorkspaceEvent.starts_at, user_id, search_terms(query), limit, window)
        ]

    def search_messages(
        self, user_id: str, query: str, limit: int = 10, window: DateWindow | None = None
    ) -> list[dict[str, Any]]:
        return [
            {"from": m.sender, "channel": m.channel, "message": m.body, "sent_at": _iso(m.sent_at)}
            for m in self._search(
                WorkspaceMessage, WorkspaceMessage.sent_at, user_id, search_terms(query), limit, window
            )
        ]

    def _search(
        self,
        model: type[R],
        recency: InstrumentedAttribute[datetime],
        user_id: str,
        terms: list[str],
        limit: int,
        window: DateWindow | None = None,
    ) -> list[R]:
        """Best matches first; with no terms, the newest rows (in a date window: in date order)."""
        name = model.__tablename__
        stmt = select(model).where(model.user_id == user_id).limit(max(1, min(int(limit), MAX_LIMIT)))
        if window is not None:
            stmt = stmt.where(recency >= window.start, recency < window.end)
        if not terms:
            stmt = stmt.order_by(recency.asc() if window else recency.desc())
        elif self.engine.dialect.name == "sqlite":
            fts = sql_table(f"{name}_fts", sql_column("rowid"))
            match = " OR ".join(f'"{term}"*' for term in terms)  # OR: "AI events" should find "AI Workshop"
            stmt = (
                stmt.join(fts, fts.c.rowid == model.id)
                .where(literal_column(fts.name).op("MATCH")(match))
                .order_by(func.bm25(literal_column(fts.name)), recency.desc())
            )
        else:
            document: ColumnElement[Any] = literal_column(_pg_document(SEARCHABLE[name]))
            tsquery = func.websearch_to_tsquery(literal_column("'english'"), " or ".join(terms))
            rank = func.ts_rank(document, tsquery)
            stmt = stmt.where(document.op("@@")(tsquery)).order_by(rank.desc(), recency.desc())
        with Session(self.engine) as session:
            return list(session.scalars(stmt))

    @staticmethod
    def _has_rows(session: Session, model: type[UserRow], user_id: str) -> bool:
        return session.scalar(select(model.id).where(model.user_id == user_id).limit(1)) is not None


_STORES = OnePerUrl[WorkspaceStore]()


def get_workspace_store(settings: Settings | None = None) -> WorkspaceStore:
    """One store per database URL, so tools share a connection pool and seeding runs once."""
    settings = settings or get_settings()
    url = settings.resolved_database_url()

    def make() -> WorkspaceStore:
        store = WorkspaceStore(url)
        store.create()
        store.seed_demo(settings.workspaces_dir)
        return store

    return _STORES.get(url, make)
