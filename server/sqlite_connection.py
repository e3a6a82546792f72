"""aiosqlite, crossing to its thread once per statement instead of four times, and once per unit of work.

SQLAlchemy's aiosqlite adapter makes a cursor, executes, fetches and closes it: four trips to
aiosqlite's thread and back per statement, each about 60 µs of CPU on the 2-core machine, where the
statement itself takes a few. Here a cursor is made where it is asked for, ``execute`` fetches its
rows in the same trip, and fetching and closing are local. ``run`` goes further: a whole transaction
of sync code on the connection's own thread, one trip (``server.db.transaction``).

Plugged into SQLAlchemy through ``create_async_engine(async_creator=…)``; the subclasses lean on
aiosqlite's ``Connection._execute`` (run a function on its thread) and ``Cursor._cursor``, so the
dependency is pinned to the minor version they were written against.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")


class PrefetchingCursor(aiosqlite.Cursor):
    """Executes and fetches in one trip; SQLAlchemy reads every row of a result at once anyway."""

    _rows: list[Any] | None = None

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> PrefetchingCursor:
        cursor = self._cursor

        def execute_and_fetch() -> list[Any] | None:
            cursor.execute(sql, () if parameters is None else parameters)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else None

        self._rows = await self._execute(execute_and_fetch)  # type: ignore[no-untyped-call]
        return self

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        rows, count = self._rows or [], size or self.arraysize
        self._rows = rows[count:]
        return rows[:count]

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows or [], None
        return rows

    async def close(self) -> None:
        self._rows = None  # the sqlite3 cursor has been read to the end; it holds nothing


class _Ready:
    """``cursor()``'s answer: aiosqlite's is awaitable and an async context manager; this is both, at no cost."""

    def __init__(self, cursor: PrefetchingCursor) -> None:
        self.cursor = cursor

    def __await__(self) -> Generator[Any, None, PrefetchingCursor]:
        yield from ()
        return self.cursor

    async def __aenter__(self) -> PrefetchingCursor:
        return self.cursor

    async def __aexit__(self, *exc: object) -> None:
        await self.cursor.close()


class Connection(aiosqlite.Connection):
    sync_connection: Any = None
    """A sync SQLAlchemy connection over this one, made on first use by ``server.db.transaction``."""

    def cursor(self) -> _Ready:  # type: ignore[override]
        """A cursor made here, not on the thread: making one is a Python object, no SQLite work."""
        return _Ready(PrefetchingCursor(self, self._conn.cursor()))

    async def close(self) -> None:
        """The sync connection first: left for the garbage collector, it rolled back on the closed SQLite
        connection and logged an ERROR traceback at every shutdown."""
        if self.sync_connection is not None:
            sync, self.sync_connection = self.sync_connection, None
            await self._execute(sync.close)  # type: ignore[no-untyped-call]
        await super().close()

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` on the connection's thread: a whole unit of work in one trip."""
        result: T = await self._execute(work, self._conn)  # type: ignore[no-untyped-call]
        return result


async def connect(path: str) -> Connection:
    """Cursors are made on the event loop's thread and used on the connection's, hence ``check_same_thread``."""
    connection = Connection(lambda: sqlite3.connect(path, check_same_thread=False), iter_chunk_size=64)
    await connection
    return connection
