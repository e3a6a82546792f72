"""The ``support_requests`` table, its turns and approvals, written as the support graph runs.

The graph's checkpoint holds the live conversation; this table is what the API lists and the
analytics aggregate, so every query here is filtered by the caller's user id. Writes are
idempotent (insert-if-missing, keyed updates), because a node may run again after a resume.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    extract,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from loom.settings import Settings, get_settings
from services.stores.db import Base, OnePerUrl, create_tables, make_engine
from state.support import STATUSES, SupportRequest, Turn


class RequestConflict(ValueError):
    """The request is not in a state that allows the change (e.g. resolving it twice)."""


class RequestRow(Base):
    __tablename__ = "support_requests"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    initial_message: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    priority: Mapped[str] = mapped_column(String(20), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    current_agent: Mapped[str | None] = mapped_column(String(20), nullable=True)
    escalation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolution_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class TurnRow(Base):
    __tablename__ = "support_turns"
    __table_args__ = (UniqueConstraint("request_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("support_requests.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    agent: Mapped[str] = mapped_column(String(20))
    user_message: Mapped[str] = mapped_column(Text)
    agent_response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ApprovalRow(Base):
    __tablename__ = "support_approvals"
    __table_args__ = (UniqueConstraint("request_id", "tool_call_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("support_requests.id"), index=True)
    tool_call_id: Mapped[str] = mapped_column(String(200))
    tool: Mapped[str] = mapped_column(String(100))
    args: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(20))  # pending | approve | edit | reject
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=None)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class SupportStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        create_tables(self.engine, RequestRow, TurnRow, ApprovalRow)

    # -- written by the graph -------------------------------------------------------------
    def open_request(self, request: SupportRequest) -> None:
        try:
            with Session(self.engine) as session, session.begin():
                if session.get(RequestRow, request["request_id"]) is None:
                    session.add(RequestRow(id=request["request_id"], **self._fields(request)))
        except IntegrityError:  # a replay raced us to it; the first row stands
            pass

    def save_request(self, request: SupportRequest, when: datetime | None = None) -> None:
        """Mirror the graph's request record; stamps escalation and resolution times once."""
        with Session(self.engine) as session, session.begin():
            row = session.get(RequestRow, request["request_id"])
            if row is None:
                row = RequestRow(id=request["request_id"], **self._fields(request))
                session.add(row)
            self._update(row, request, when or parse_time(request["updated_at"]))

    def record_turn(self, request: SupportRequest, turn: Turn, seq: int) -> None:
        at = parse_time(turn["timestamp"])
        with Session(self.engine) as session, session.begin():
            row = session.get(RequestRow, request["request_id"])
            if row is None:
                row = RequestRow(id=request["request_id"], **self._fields(request))
                session.add(row)
            self._update(row, request, at)
            row.first_response_at = row.first_response_at or at
            exists = session.scalar(select(TurnRow.id).where(TurnRow.request_id == row.id, TurnRow.seq == seq))
            if exists is None:
                session.add(TurnRow(request_id=row.id, seq=seq, created_at=at, **_turn_fields(turn)))

    def record_approval(
        self,
        request_id: str,
        tool_call_id: str,
        tool: str,
        args: dict[str, Any],
        decision: str,
        reason: str,
        at: datetime,
    ) -> None:
        with Session(self.engine) as session, session.begin():
            query = select(ApprovalRow).where(
                ApprovalRow.request_id == request_id, ApprovalRow.tool_call_id == tool_call_id
            )
            row = session.scalar(query)
            if row is None:
                row = ApprovalRow(request_id=request_id, tool_call_id=tool_call_id, tool=tool, created_at=at)
                session.add(row)
            elif decision == "pending":
                return  # a replay of the request never undoes a decision
            row.args, row.decision, row.reason = json.dumps(args, sort_keys=True), decision, reason

    def status_of(self, request_id: str) -> tuple[str, str | None] | None:
        with Session(self.engine) as session:
            row = session.get(RequestRow, request_id)
            return (row.status, row.resolution_summary) if row else None

    # -- read and changed by the API --------------------------------------------------------
    def list_requests(self, user_id: str, filters: Mapping[str, str | None], limit: int = 100) -> list[dict[str, Any]]:
        query = select(RequestRow).where(RequestRow.user_id == user_id)
        for name, value in filters.items():
            if value is not None:
                query = query.where(getattr(RequestRow, name) == value)
        with Session(self.engine) as session:
            rows = session.scalars(query.order_by(RequestRow.created_at.desc()).limit(limit)).all()
            return [_request_view(row) for row in rows]

    def get_request(self, user_id: str, request_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            row = session.get(RequestRow, request_id)
            if row is None or row.user_id != user_id:
                return None
            turns = session.scalars(select(TurnRow).where(TurnRow.request_id == row.id).order_by(TurnRow.seq)).all()
            approvals = session.scalars(select(ApprovalRow).where(ApprovalRow.request_id == row.id)).all()
            return {
                **_request_view(row),
                "turns": [_turn_view(t) for t in turns],
                "approvals": [_approval_view(a) for a in approvals],
            }

    def resolve(self, user_id: str, request_id: str, summary: str, at: datetime) -> dict[str, Any] | None:
        with Session(self.engine) as session, session.begin():
            row = session.get(RequestRow, request_id)
            if row is None or row.user_id != user_id:
                return None
            if row.status == "resolved":
                raise RequestConflict(f"request {request_id} is already resolved")
            row.status, row.resolution_summary, row.resolved_at, row.updated_at = "resolved", summary, at, at
            return _request_view(row)

    def analytics(self, user_id: str) -> dict[str, Any]:
        """Seed 002's metrics, aggregated by the database over the caller's requests."""
        mine = RequestRow.user_id == user_id
        with Session(self.engine) as session:
            total, escalated = session.execute(
                select(func.count(RequestRow.id), func.count(RequestRow.escalated_at)).where(mine)
            ).one()
            wait = self._seconds(RequestRow.first_response_at, RequestRow.created_at)
            mean_wait = session.scalar(select(func.avg(wait)).where(mine, RequestRow.first_response_at.is_not(None)))
            approvals = session.execute(
                select(ApprovalRow.decision, func.count(ApprovalRow.id))
                .join(RequestRow, RequestRow.id == ApprovalRow.request_id)
                .where(mine)
                .group_by(ApprovalRow.decision)
            ).all()
            return {
                "total_requests": total,
                "by_status": {**dict.fromkeys(STATUSES, 0), **self._count_by(session, RequestRow.status, mine)},
                "by_category": self._count_by(session, RequestRow.category, mine),
                "by_priority": self._count_by(session, RequestRow.priority, mine),
                "mean_first_response_seconds": round(float(mean_wait), 3) if mean_wait is not None else None,
                "escalation_rate": round(escalated / total, 4) if total else 0.0,
                "escalated_requests": escalated,
                "approvals": {**dict.fromkeys(("pending", "approve", "edit", "reject"), 0), **dict(approvals)},
            }

    def _seconds(self, later: Any, earlier: Any) -> ColumnElement[Any]:
        if self.engine.dialect.name == "sqlite":
            return (func.julianday(later) - func.julianday(earlier)) * 86400.0
        return extract("epoch", later - earlier)

    @staticmethod
    def _count_by(session: Session, column: Any, where: ColumnElement[bool]) -> dict[str, int]:
        rows = session.execute(select(column, func.count()).where(where, column.is_not(None)).group_by(column)).all()
        return {str(key): int(count) for key, count in rows}

    @staticmethod
    def _fields(request: SupportRequest) -> dict[str, Any]:
        created = parse_time(request["created_at"])
        return {
            "user_id": request["user_id"],
            "initial_message": request["initial_message"],
            "priority": request["priority"],
            "status": request["status"],
            "created_at": created,
            "updated_at": created,
        }

    @staticmethod
    def _update(row: RequestRow, request: SupportRequest, when: datetime) -> None:
        row.category, row.priority, row.status = request["category"], request["priority"], request["status"]
        row.current_agent, row.escalation_reason = request["current_agent"], request["escalation_reason"]
        row.resolution_summary, row.updated_at = request["resolution_summary"], when
        if request["status"] == "escalated" and row.escalated_at is None:
            row.escalated_at = when
        if request["status"] != "resolved":
            row.resolved_at = None


def _turn_fields(turn: Turn) -> dict[str, Any]:
    return {"agent": turn["agent"], "user_message": turn["user_message"], "agent_response": turn["agent_response"]}


def _request_view(row: RequestRow) -> dict[str, Any]:
    return {
        "request_id": row.id,
        "user_id": row.user_id,
        "initial_message": row.initial_message,
        "category": row.category,
        "priority": row.priority,
        "status": row.status,
        "current_agent": row.current_agent,
        "escalation_reason": row.escalation_reason,
        "resolution_summary": row.resolution_summary,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "first_response_at": _iso(row.first_response_at),
        "escalated_at": _iso(row.escalated_at),
        "resolved_at": _iso(row.resolved_at),
    }


def _turn_view(row: TurnRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "timestamp": _iso(row.created_at),
        "agent": row.agent,
        "user_message": row.user_message,
        "agent_response": row.agent_response,
    }


def _approval_view(row: ApprovalRow) -> dict[str, Any]:
    args = json.loads(row.args) if row.args else {}
    return {
        "tool_call_id": row.tool_call_id,
        "tool": row.tool,
        "args": args,
        "decision": row.decision,
        "reason": row.reason,
    }


_STORES = OnePerUrl[SupportStore]()


def get_support_store(settings: Settings | None = None) -> SupportStore:
    url = (settings or get_settings()).resolved_database_url()
    return _STORES.get(url, lambda: SupportStore(url))
