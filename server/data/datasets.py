"""Evaluation datasets as rows: each a caller's own, every change of its examples a new version (issue 25).

The examples are validated by ``loom.datasets`` before they reach this module and stored as JSON, one list per
version, so an experiment names the exact examples it ran. Another user's dataset is unknown (404).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.db import UtcDateTime, new_id, now, transaction
from server.errors import ApiError, not_found
from server.responses import Dataset, DatasetSummary, DatasetVersion
from services.stores.db import Base

Sessions = async_sessionmaker[AsyncSession]
Examples = list[dict[str, Any]]


class DatasetRow(Base):
    __tablename__ = "loom_datasets"

    dataset_id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    """The latest version."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class DatasetVersionRow(Base):
    """The examples a dataset had at one version; kept when a newer one is made."""

    __tablename__ = "loom_dataset_versions"

    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("loom_datasets.dataset_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    examples: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


def summary(row: DatasetRow, count: int) -> DatasetSummary:
    return {"dataset_id": row.dataset_id, "name": row.name, "description": row.description, "version": row.version,
            "example_count": count, "created_at": row.created_at, "updated_at": row.updated_at}  # fmt: skip


def view(row: DatasetRow, version: DatasetVersionRow) -> Dataset:
    """The dataset with the examples of ``version`` (``version`` says which)."""
    return {**summary(row, len(version.examples)), "version": version.version, "examples": version.examples}


def version_view(version: DatasetVersionRow) -> DatasetVersion:
    return {"version": version.version, "example_count": len(version.examples), "created_at": version.created_at}


def _owned(session: Session, dataset_id: str, user: str, lock: bool = False) -> DatasetRow:
    row = session.get(DatasetRow, dataset_id, with_for_update=lock)
    if row is None or row.owner != user:
        raise not_found("dataset", dataset_id)
    return row


def _version(session: Session, row: DatasetRow, version: int | None) -> DatasetVersionRow:
    found = session.get(DatasetVersionRow, (row.dataset_id, version or row.version))
    if found is None:
        raise not_found("dataset_version", f"{row.dataset_id} v{version}")
    return found


async def create(sessions: Sessions, user: str, name: str, description: str | None, examples: Examples) -> Dataset:
    """A new dataset of ``user``'s at version 1."""

    def work(session: Session) -> Dataset:
        stamp = now()
        row = DatasetRow(dataset_id=new_id(), owner=user, name=name, description=description, version=1,
                         created_at=stamp, updated_at=stamp)  # fmt: skip
        version = DatasetVersionRow(dataset_id=row.dataset_id, version=1, examples=examples, created_at=stamp)
        session.add_all([row, version])
        return view(row, version)

    return await transaction(sessions, work)


async def owned(sessions: Sessions, user: str, limit: int, offset: int) -> list[DatasetSummary]:
    """``user``'s datasets, newest change first, each with its latest version's example count."""
    latest = (DatasetVersionRow.dataset_id == DatasetRow.dataset_id) & (DatasetVersionRow.version == DatasetRow.version)
    query = (
        select(DatasetRow, DatasetVersionRow.examples)
        .join(DatasetVersionRow, latest)
        .where(DatasetRow.owner == user)
        .order_by(DatasetRow.updated_at.desc(), DatasetRow.dataset_id)
        .limit(limit)
        .offset(offset)
    )
    async with sessions() as session:
        return [summary(row, len(examples)) for row, examples in (await session.execute(query)).all()]


async def read(sessions: Sessions, dataset_id: str, user: str, version: int | None = None) -> Dataset:
    """``user``'s dataset with the examples of ``version`` (the latest if None); 404 for a version it never had."""

    def work(session: Session) -> Dataset:
        row = _owned(session, dataset_id, user)
        return view(row, _version(session, row, version))

    return await transaction(sessions, work)


async def versions(sessions: Sessions, dataset_id: str, user: str) -> list[DatasetVersion]:
    """Every version of ``user``'s dataset, newest first."""

    def work(session: Session) -> list[DatasetVersion]:
        row = _owned(session, dataset_id, user)
        query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == row.dataset_id)
        return [version_view(v) for v in session.scalars(query.order_by(DatasetVersionRow.version.desc()))]

    return await transaction(sessions, work)


async def revise(
    sessions: Sessions, dataset_id: str, user: str, change: Callable[[DatasetRow, Examples], Examples]
) -> Dataset:
    """A new version of ``user``'s dataset with the examples ``change`` makes of the latest ones (it may also set
    the name and description on the row); the older versions stay."""

    def work(session: Session) -> Dataset:
        row = _owned(session, dataset_id, user, lock=True)  # concurrent revisions queue for the next number
        examples = change(row, list(_version(session, row, None).examples))
        row.version, row.updated_at = row.version + 1, now()
        version = DatasetVersionRow(dataset_id=row.dataset_id, version=row.version, examples=examples,
                                    created_at=row.updated_at)  # fmt: skip
        session.add(version)
        return view(row, version)

    return await transaction(sessions, work)


def appended(example: dict[str, Any]) -> Callable[[DatasetRow, Examples], Examples]:
    """A ``revise`` change adding ``example`` last; 409 ``example_exists`` if its id is taken."""

    def change(_row: DatasetRow, examples: Examples) -> Examples:
        if any(existing["id"] == example["id"] for existing in examples):
            message = f"example {example['id']!r} is already in the dataset; send another id"
            raise ApiError(409, "example_exists", message)
        return [*examples, example]

    return change


async def remove(sessions: Sessions, dataset_id: str, user: str) -> None:
    """Deletes ``user``'s dataset with every version."""

    def work(session: Session) -> None:
        row = _owned(session, dataset_id, user)
        session.execute(delete(DatasetVersionRow).where(DatasetVersionRow.dataset_id == row.dataset_id))
        session.delete(row)

    await transaction(sessions, work)
