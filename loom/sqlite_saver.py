"""LangGraph's SQLite checkpointer, its async API served by one thread of its own: one hop per call.

``AsyncSqliteSaver`` goes through aiosqlite, which crosses to its thread and back for every cursor
operation (execute, fetch, close, commit): about 180 µs of CPU each on the 2-core machine, and a
checkpoint read or write takes three to six of them. Here LangGraph's sync ``SqliteSaver`` does the
whole call on one dedicated thread, so each ``aget_tuple``/``aput``/``aput_writes`` is one crossing
(about 60 µs) and the event loop never runs SQLite itself. Same tables, same file format: a database
written by either saver is read by the other.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver

T = TypeVar("T")


class ThreadedSqliteSaver(SqliteSaver):
    """``SqliteSaver`` whose async methods run the sync ones on one thread: callers queue in order there,
    and the saver's own lock keeps sync callers (the CLI, tests) in step with them."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loom-checkpoints")

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args, **kwargs))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._call(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        # Read in one call: ``list`` holds the saver's lock while it iterates, so pausing it between
        # crossings would block every other call queued on the thread. ``limit`` bounds the page.
        page = await self._call(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in page:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._call(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self._call(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._call(self.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Mapping[str, Any]:
        return await self._call(self.get_delta_channel_history, config=config, channels=channels)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.conn.close()


@asynccontextmanager
async def open_sqlite_saver(path: str, synchronous: str) -> AsyncIterator[ThreadedSqliteSaver]:
    """The saver on ``path`` (WAL, ``synchronous`` as configured), its tables created before the first call."""
    conn = await asyncio.to_thread(sqlite3.connect, path, check_same_thread=False)
    saver = ThreadedSqliteSaver(conn)
    try:
        await saver._call(saver.setup)  # WAL; tables exist before any call (``delete_thread`` does not create them)
        await saver._call(conn.execute, f"PRAGMA synchronous={synchronous}")
        yield saver
    finally:
        await asyncio.to_thread(saver.close)
