"""Run events: serialised once, numbered, kept in a bounded buffer, fanned out to any number of clients.

Every event gets a sequence number that doubles as the SSE ``id:``, so a client that drops can
rejoin with ``Last-Event-ID`` and receive exactly what it missed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import deque
from collections.abc import AsyncIterator
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel


def to_jsonable(value: Any) -> Any:
    """``json.dumps`` fallback for LangChain messages, interrupts, dataclasses and friends."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Enum):
        return str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "_asdict"):
        return value._asdict()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return repr(value)


def dumps(value: Any) -> str:
    return json.dumps(value, default=to_jsonable, ensure_ascii=False, separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class Event:
    seq: int
    name: str
    data: str
    """Already JSON: serialised once however many clients read it."""

    def sse(self) -> str:
        return f"id: {self.seq}\nevent: {self.name}\ndata: {self.data}\n\n"

    def ndjson(self) -> str:
        return f'{{"id":{self.seq},"event":{json.dumps(self.name)},"data":{self.data}}}\n'


class RunStream:
    """The event log of one run; readers wait on a condition instead of polling."""

    def __init__(self, limit: int) -> None:
        self._events: deque[Event] = deque(maxlen=limit)
        self._next_seq = 1
        self._closed = False
        self._changed = asyncio.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    async def publish(self, name: str, data: Any) -> None:
        async with self._changed:
            self._events.append(Event(self._next_seq, name, dumps(data)))
            self._next_seq += 1
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    def reopen(self) -> None:
        """A new attempt of the run writes on after the old ``end``; numbering continues."""
        self._closed = False

    async def follow(self, after: int = 0, idle_s: float | None = None) -> AsyncIterator[Event | None]:
        """Events with ``seq > after``, then live ones until the run closes; ``None`` after ``idle_s`` of quiet.

        The ``None`` lets a reader check the database while nothing happens, so a stream whose writer
        died never holds a reader for ever.
        """
        while True:
            async with self._changed:  # the predicate runs inside wait_for, with this iteration's ``after``
                try:
                    async with asyncio.timeout(idle_s):
                        await self._changed.wait_for(lambda: self._closed or self._last_seq() > after)  # noqa: B023
                except TimeoutError:
                    pending, closed, idle = [], False, True
                else:
                    pending = [event for event in self._events if event.seq > after]
                    closed, idle = self._closed, False
            if idle:
                yield None
                continue
            for event in pending:
                yield event
                after = event.seq
            if closed and not pending:
                return

    def _last_seq(self) -> int:
        return self._events[-1].seq if self._events else 0
