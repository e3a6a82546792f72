"""One metadata for every table Loom owns, and one way to open the sync engines the stores use.

Threads and runs (``server.db``), the workspace, accounts, shop and support tables all declare on
:class:`Base`, so ``Base.metadata`` is Loom's whole schema. Each store creates only its own tables,
because the shop keeps its catalogue in a file of its own (tools run in LangGraph's thread pool,
hence sync engines).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import JSON, Connection, Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


S = TypeVar("S")

SCHEMA_LOCK = 0x4C4F4F53  # "LOOS": serialises the stores' table creation and demo seeding across processes


def lock_schema(connection: Connection) -> None:
    """On PostgreSQL, hold a transaction-scoped advisory lock: worker processes starting together on one
    database would otherwise both see a table (or a demo customer) missing and both create it, and one fails."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")


def create_tables(bind: Engine | Connection, *models: type[Base]) -> None:
    """Create the models' tables where they are missing (one process at a time); other tables are left alone."""
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            create_tables(connection, *models)
        return
    lock_schema(bind)
    Base.metadata.create_all(bind, tables=[model.__table__ for model in models])  # type: ignore[misc]


def make_engine(url: str) -> Engine:
    """Plain ``postgresql://`` URLs mean psycopg 3 (Loom's driver); SQLite files get their folder."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(parsed)


class OnePerUrl(Generic[S]):
    """One store per database URL, made the first time it is asked for, so tools share its connection pool
    and its tables are created (and demo rows seeded) once; the lock keeps two threads from both making it."""

    def __init__(self) -> None:
        self._made: dict[str, S] = {}
        self._lock = threading.Lock()

    def get(self, url: str, make: Callable[[], S]) -> S:
        with self._lock:
            if url not in self._made:
                self._made[url] = make()
            return self._made[url]
