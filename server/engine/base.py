"""What every part of the run manager shares: its collaborators and this process's bookkeeping of its runs."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from loom.settings import Settings
from server.engine import queue
from server.engine.bus import EventBus


class ManagerBase:
    """The run manager's state; the stages built on it (``server.engine.manager``) each add their methods."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        graphs: dict[str, CompiledStateGraph[Any, Any, Any, Any]],
        checkpointer: BaseCheckpointSaver[str],
        bus: EventBus,
        per_run: Mapping[str, Callable[..., Awaitable[CompiledStateGraph[Any, Any, Any, Any]]]] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.graphs = graphs
        self.per_run = per_run or {}
        """Graphs whose factory takes a config or a ``ServerRuntime``: rebuilt for each run (and each state read or
        update, schema or drawing: ``Services.graph_for``)."""
        self.checkpointer = checkpointer
        self.bus = bus
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stoppable: set[str] = set()
        """Runs in their graph phase: a cancel signal stops them; in ``_finish`` they are past stopping."""
        self._reasons: dict[str, str] = {}
        self._lost: set[str] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[bool]] = set()
        self._reserved = 0
        self._backlog = True
        """Runs may be waiting for this worker: a claim filled every free slot or found none free, or a finished
        run's thread has runs queued. Only then does a finishing run wake the dispatcher; otherwise its claim
        would find nothing, and on SQLite that empty transaction took the write lock once per run."""
        self._checked: set[str] = set()
        """Slots promised to runs being inserted as claimed (``take_slot``), not yet started."""
        self._stopping = False
        self._creating: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._outcomes: OrderedDict[str, queue.Outcome] = OrderedDict()
