"""Assistants as rows: a graph plus saved config, context and metadata, versioned on every patch.

Each served graph gets a default assistant at start, with langgraph-api's id (uuid5 of the graph id
in the namespace langgraph-api uses), so ids agree between Loom and ``langgraph dev``. Wherever an
``assistant_id`` is accepted, a graph id means that default assistant. Default assistants belong to
no one and every caller sees them; an assistant a caller creates is visible to that caller only.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ForeignKey, Integer, String, asc, delete, desc, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.auth import Filters, matches, metadata_match
from server.db import CronRow, UtcDateTime, now, transaction
from server.errors import ApiError, not_found
from server.registry import require_loaded
from server.responses import Assistant, AssistantVersion
from server.schemas import RunConfig
from services.stores.db import Base

NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
"""langgraph-api's namespace for default assistant ids (``langgraph_api.graph.NAMESPACE_GRAPH``)."""
SYSTEM_METADATA = {"created_by": "system"}
FieldName = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "metadata",
    "version",
    "created_at",
    "updated_at",
]


class AssistantRow(Base):
    __tablename__ = "loom_assistants"

    assistant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    """None for a graph's default assistant (visible to every caller)."""
    graph_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class AssistantVersionRow(Base):
    """Every version an assistant has had; ``set latest`` copies one back onto the assistant."""

    __tablename__ = "loom_assistant_versions"

    assistant_id: Mapped[str] = mapped_column(
        ForeignKey("loom_assistants.assistant_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    graph_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


VERSIONED = ("graph_id", "name", "description", "config", "context", "metadata_")


@functools.lru_cache(maxsize=1024)  # every run naming its graph asks; a uuid5 is a SHA-1 each time
def system_id(graph_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE_GRAPH, graph_id))


def default_name(graph_id: str, graph: Any) -> str:
    """As langgraph-api: the compiled graph's name, unless it is LangGraph's placeholder."""
    name = getattr(graph, "name", None)
    return name if isinstance(name, str) and name and name != "LangGraph" else graph_id


def canonical_id(assistant_id: str, graphs: Any) -> str:
    """A graph id names its default assistant, as in langgraph-api."""
    return system_id(assistant_id) if assistant_id in graphs else assistant_id


def snapshot(row: AssistantRow) -> AssistantVersionRow:
    values = {field: getattr(row, field) for field in VERSIONED}
    return AssistantVersionRow(assistant_id=row.assistant_id, version=row.version, created_at=now(), **values)


def visible(owner: str | None, user: str) -> bool:
    return owner is None or owner == user


def visible_to(user: str) -> Any:
    return or_(AssistantRow.owner.is_(None), AssistantRow.owner == user)


def stored(session: Session, assistant_id: str, user: str, graphs: Any, lock: bool = False) -> AssistantRow:
    """The caller's (or a default) assistant by id or graph id, for a graph this server serves; else 404."""
    require_loaded(graphs, assistant_id)  # a graph id whose graph failed to load: say so, not "not found"
    row = session.get(AssistantRow, canonical_id(assistant_id, graphs), with_for_update=lock)
    if row is None or not visible(row.owner, user):
        raise not_found("assistant", assistant_id)
    if row.graph_id not in graphs:
        require_loaded(graphs, row.graph_id)
        raise not_found("assistant", assistant_id)
    return row


async def find(session: AsyncSession, assistant_id: str, user: str, graphs: Any, lock: bool = False) -> AssistantRow:
    """``stored`` in an async session."""
    return await session.run_sync(stored, assistant_id, user, graphs, lock)


async def find_own(session: AsyncSession, assistant_id: str, user: str, graphs: Any) -> AssistantRow:
    """As ``find``, for changes: a default assistant is every caller's, so no caller may change or delete it."""
    row = await find(session, assistant_id, user, graphs, lock=True)
    if row.owner is None:
        message = f"assistant {assistant_id!r} is a graph's default and belongs to the server; create your own"
        raise ApiError(409, "assistant_is_default", message)
    return row


async def resolve(
    sessions: async_sessionmaker[AsyncSession], assistant_id: str, user: str, graphs: Any
) -> AssistantRow:
    """The assistant a run names, read in one step on the engine's path (``server.db.transaction``)."""
    return await transaction(sessions, functools.partial(stored, assistant_id=assistant_id, user=user, graphs=graphs))


def synced(config: dict[str, Any], context: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """As langgraph-api: an assistant's ``context`` and ``config.configurable`` are kept equal; not both."""
    configurable = config.get("configurable")
    if configurable and context:
        raise ApiError(422, "invalid_request", "context: send context or config.configurable, not both")
    if configurable:
        return config, dict(configurable)
    if context:
        return {**config, "configurable": dict(context)}, context
    return config, context


def run_metadata(assistant_id: str, graph_id: str, *layers: dict[str, Any] | None) -> dict[str, Any]:
    """A run's metadata as langgraph-api merges it: the assistant's, the thread's, the config's, the request's
    (a later layer wins), so a graph finds a tag its client put on the thread (a tenant, a channel) on every
    run; the assistant and graph ids are the run's own, whatever a layer says (a thread has its graph id
    only from its first run on, so that run's metadata lacked it)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return {**merged, "graph_id": graph_id, "assistant_id": assistant_id}


def merged_run(body: Any, assistant: AssistantRow) -> Any:
    """A run body with the assistant's config and context underneath the run's own (the run wins)."""
    if not assistant.config and not assistant.context:
        return body
    run_config = body.config.model_dump(exclude_none=True) if body.config else {}
    configurable = {**(assistant.config.get("configurable") or {}), **(run_config.get("configurable") or {})}
    config = {**assistant.config, **run_config, "configurable": configurable}
    context = {**assistant.context, **(body.context or {})}
    return body.model_copy(update={"config": RunConfig.model_validate(config), "context": context})


def version_view(row: AssistantRow | AssistantVersionRow) -> AssistantVersion:
    """An assistant's version as langgraph-api shows it."""
    return {
        "assistant_id": row.assistant_id,
        "graph_id": row.graph_id,
        "name": row.name,
        "description": row.description,
        "config": row.config,
        "context": row.context,
        "metadata": row.metadata_,
        "version": row.version,
        "created_at": row.created_at,
    }


def view(row: AssistantRow) -> Assistant:
    """An assistant as langgraph-api shows it: its current version and when it last changed."""
    return {**version_view(row), "updated_at": row.updated_at}


def selected(found: Assistant, select_fields: list[FieldName] | None) -> dict[str, Any]:
    """The fields a search's ``select`` names (every field without one)."""
    return {k: v for k, v in found.items() if k in select_fields} if select_fields else dict(found)


async def ensure_defaults(sessions: async_sessionmaker[AsyncSession], names: dict[str, tuple[str, str | None]]) -> None:
    """One default assistant per graph (``names``: graph id → name, description); kept in step with the graph."""
    for graph_id, (name, description) in names.items():
        try:
            async with sessions.begin() as session:
                row = await session.get(AssistantRow, system_id(graph_id))
                if row is None:
                    row = AssistantRow(assistant_id=system_id(graph_id), owner=None, graph_id=graph_id, name=name,
                                       description=description, config={}, context={},
                                       metadata_=dict(SYSTEM_METADATA), version=1)  # fmt: skip
                    session.add(row)
                    await session.flush()
                    session.add(snapshot(row))
                elif (row.name, row.description) != (name, description):
                    row.name, row.description = name, description
        except IntegrityError:  # another process inserted it first: theirs is as good
            continue


async def latest_version(session: AsyncSession, assistant_id: str) -> int:
    query = select(AssistantVersionRow.version).where(AssistantVersionRow.assistant_id == assistant_id)
    versions = (await session.scalars(query)).all()
    return max(versions, default=0)


def allowed(row: AssistantRow, filters: Filters, assistant_id: str) -> AssistantRow:
    """A row the project's auth filter leaves out looks like one that does not exist (404)."""
    if not matches(row.metadata_, filters):
        raise not_found("assistant", assistant_id)
    return row


async def create(
    sessions: async_sessionmaker[AsyncSession], assistant_id: str, owner: str, if_exists: str, **fields: Any
) -> AssistantRow:
    """A new assistant at version 1 (``fields``: graph_id, name, description, config, context, metadata_), or
    with ``if_exists="do_nothing"`` the caller's own existing one; 409 ``assistant_exists`` otherwise."""
    async with sessions.begin() as session:
        if (existing := await session.get(AssistantRow, assistant_id)) is not None:
            if if_exists == "raise" or not visible(existing.owner, owner):
                raise ApiError(409, "assistant_exists", f"assistant {assistant_id!r} already exists")
            return existing
        row = AssistantRow(assistant_id=assistant_id, owner=owner, version=1, created_at=now(), updated_at=now(),
                           **fields)  # fmt: skip
        session.add(row)
        await session.flush()
        session.add(snapshot(row))
    return row


async def matching(
    sessions: async_sessionmaker[AsyncSession],
    user: str,
    graphs: Any,
    filters: Filters,
    graph_id: str | None = None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    order: tuple[str, str] | None = None,
) -> list[AssistantRow]:
    """The caller's and the default assistants of served ``graphs`` with this graph id, a name containing
    ``name`` (any case) and these metadata pairs that pass the auth ``filters``; ``order`` is (column, asc|desc),
    names and graph ids compared without case, ties broken by id."""
    query = select(AssistantRow).where(visible_to(user), AssistantRow.graph_id.in_(list(graphs)))
    if graph_id is not None:
        query = query.where(AssistantRow.graph_id == graph_id)
    if name:
        query = query.where(func.lower(AssistantRow.name).contains(name.lower(), autoescape=True))
    if order is not None:
        column, direction = getattr(AssistantRow, order[0]), desc if order[1] == "desc" else asc
        key = func.lower(column) if order[0] in ("name", "graph_id") else column
        query = query.order_by(direction(key), direction(AssistantRow.assistant_id))
    async with sessions() as session:
        rows = list((await session.scalars(query)).all())
    return metadata_match(rows, metadata, filters)


async def update(
    sessions: async_sessionmaker[AsyncSession],
    assistant_id: str,
    user: str,
    graphs: Any,
    filters: Filters,
    changes: dict[str, Any],
) -> AssistantRow:
    """The caller's assistant with ``changes`` (graph_id, config, context, metadata, name, description; None
    keeps the field, metadata is merged) as a new version, snapshotted."""
    async with sessions.begin() as session:
        row = allowed(await find_own(session, assistant_id, user, graphs), filters, assistant_id)
        row.version = await latest_version(session, row.assistant_id) + 1
        row.graph_id = changes["graph_id"] or row.graph_id
        row.config = changes["config"] or row.config
        row.context = row.context if changes["context"] is None else changes["context"]
        row.metadata_ = {**row.metadata_, **(changes["metadata"] or {})}
        row.name = changes["name"] if changes["name"] is not None else row.name
        row.description = changes["description"] if changes["description"] is not None else row.description
        row.updated_at = now()
        session.add(snapshot(row))
    return row


async def remove(
    sessions: async_sessionmaker[AsyncSession], assistant_id: str, user: str, graphs: Any, filters: Filters
) -> None:
    """Deletes the caller's assistant with its versions and its crons; threads and runs that used it stay."""
    async with sessions.begin() as session:
        row = allowed(await find_own(session, assistant_id, user, graphs), filters, assistant_id)
        await session.execute(delete(CronRow).where(CronRow.assistant_id == row.assistant_id))
        await session.execute(delete(AssistantVersionRow).where(AssistantVersionRow.assistant_id == row.assistant_id))
        await session.delete(row)


async def versions(
    sessions: async_sessionmaker[AsyncSession], assistant_id: str, metadata: dict[str, Any] | None
) -> list[AssistantVersionRow]:
    """Every version of an assistant with these metadata pairs, newest first."""
    query = select(AssistantVersionRow).where(AssistantVersionRow.assistant_id == assistant_id)
    async with sessions() as session:
        found = list((await session.scalars(query.order_by(AssistantVersionRow.version.desc()))).all())
    return metadata_match(found, metadata, {})


async def set_latest(
    sessions: async_sessionmaker[AsyncSession], assistant_id: str, user: str, graphs: Any, filters: Filters,
    version: int,
) -> AssistantRow:  # fmt: skip
    """The caller's assistant as it was at ``version`` (copied back from its snapshot); 404 for a version it
    never had."""
    async with sessions.begin() as session:
        row = allowed(await find_own(session, assistant_id, user, graphs), filters, assistant_id)
        chosen = await session.get(AssistantVersionRow, (row.assistant_id, version))
        if chosen is None:
            raise not_found("assistant_version", f"{assistant_id} v{version}")
        for field in VERSIONED:
            setattr(row, field, getattr(chosen, field))
        row.version, row.updated_at = chosen.version, now()
    return row
