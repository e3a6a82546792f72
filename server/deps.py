"""Shared services for routes, and lookups that enforce ownership (another user's thread is a 404)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import AccessContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from loom.settings import Settings
from loom.threads import public_thread_id
from server.auth import Caller, User, matches
from server.data import assistants, threads
from server.data.assistants import AssistantRow
from server.data.threads import owned_thread as owned_thread
from server.db import RunRow, ThreadRow
from server.engine import preparation
from server.engine.manager import RunManager
from server.engine.preparation import PreparedRun
from server.errors import ApiError, not_found
from server.registry import FactoryCall, Graphs, graph_specs, load_module
from server.schemas import RunCreate
from server.store_scope import ScopedStore

log = logging.getLogger("loom.server")


@dataclass
class Services:
    """What every route works with, made once by the app's lifespan: the settings, Loom's database sessions,
    the compiled graphs by id, the checkpointer, the run manager and the store (routes get it as ``Loom``)."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    graphs: Graphs
    checkpointer: BaseCheckpointSaver[str]
    manager: RunManager
    store: BaseStore
    defaults: dict[str, AssistantRow] = field(default_factory=dict)
    """Graphs' default assistants once read: no caller may change one (``assistants.find_own``), so a run
    naming its graph needs no read. One per served graph; a restart reads them again."""

    async def assistant(self, assistant_id: str, user: str) -> AssistantRow:
        """The assistant a run or cron names (an assistant id or a graph id); 404 if the caller cannot see it."""
        if (default := self.defaults.get(assistants.canonical_id(assistant_id, self.graphs))) is not None:
            return default
        row = await assistants.resolve(self.sessions, assistant_id, user, self.graphs)
        if row.owner is None:
            self.defaults[row.assistant_id] = row
        return row

    async def prepare(self, user: str, body: RunCreate, stateless: bool = False) -> PreparedRun:
        """``body`` with the assistant it names, checked against its graph (``server.engine.preparation``);
        ``stateless``: the run gets a thread of its own."""
        assistant = await self.assistant(body.assistant_id, user)
        window = preparation.InputWindow.of(self.settings)
        return preparation.prepare(user, body, assistant, self.graphs, self.manager.per_run, window, stateless)

    @contextlib.asynccontextmanager
    async def graph_for(
        self, graph_id: str, access: AccessContext, user: User, config: RunnableConfig | dict[str, Any] | None = None
    ) -> AsyncIterator[CompiledStateGraph[Any, Any, Any, Any]]:
        """The graph as its factory builds it for ``access`` by ``user`` (langgraph-api's ``ServerRuntime``:
        state reads and updates, schemas and drawings), open while the caller uses it; a graph that is no
        factory taking arguments is the one built at start."""
        rebuild = self.manager.per_run.get(graph_id)
        if rebuild is None:
            yield self.graphs[graph_id]
            return
        call = FactoryCall(access, config or {}, user, ScopedStore(self.store, user.identity))
        async with contextlib.AsyncExitStack() as stack:
            try:
                built = await rebuild(stack=stack, call=call)
            except Exception as exc:  # the project's own code
                log.exception("graph %r: its factory failed for %s by %r", graph_id, access, user.identity)
                message = f"graph {graph_id!r}: its factory failed for {access} ({type(exc).__name__}: {exc})"
                raise ApiError(500, "graph_factory_failed", message) from exc
            yield built


@lru_cache(maxsize=256)
def graph_description(graph_id: str) -> str | None:
    """The first line of the graph module's docstring; read once (the lifespan primes it off the request path)."""
    module = load_module(graph_specs()[graph_id])
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None


async def get_services(request: Request) -> Services:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a crossing per request."""
    services: Services = request.app.state.services
    return services


Loom = Annotated[Services, Depends(get_services)]
"""A route's parameter ``loom: Loom`` is the app's ``Services``."""


async def visible_thread(session: AsyncSession, thread_id: str, caller: Caller, action: str) -> ThreadRow:
    """The caller's thread, if the project's auth allows ``action`` on it and its metadata passes the filter."""
    filters = await caller.authorize("threads", action, {"thread_id": thread_id})
    return await threads.allowed_thread(session, thread_id, caller.identity, filters)


async def caller_thread(loom: Services, thread_id: str, caller: Caller, action: str) -> ThreadRow:
    """``visible_thread`` read in a session of its own: for routes, which hold none."""
    filters = await caller.authorize("threads", action, {"thread_id": thread_id})
    return await threads.read(loom.sessions, thread_id, caller.identity, filters)


async def visible_run(session: AsyncSession, thread_id: str, run_id: str, caller: Caller, action: str) -> RunRow:
    """The caller's run, checked as langgraph-api checks runs: the ``threads`` handler, on the run's thread."""
    filters = await caller.authorize("threads", action, {"thread_id": thread_id, "run_id": run_id})
    run = await owned_run(session, thread_id, run_id, caller.identity)
    if filters and not matches((await owned_thread(session, thread_id, caller.identity)).metadata_, filters):
        raise not_found("run", run_id)
    return run


async def owned_run(session: AsyncSession, thread_id: str | None, run_id: str, user: str) -> RunRow:
    """``user``'s run ``run_id``, on the thread with the public id ``thread_id`` unless that is None (a run
    without a thread), read with its feedback; another user's run, or one on another thread, is a 404 like an
    unknown id."""
    run = await session.get(RunRow, run_id, options=[selectinload(RunRow.feedback)])
    elsewhere = thread_id is not None and (run is None or public_thread_id(run.thread_id or "") != thread_id)
    if run is None or run.owner != user or elsewhere:
        raise not_found("run", run_id)
    return run


async def caller_run(loom: Services, run_id: str, caller: Caller, action: str) -> RunRow:
    """The caller's run by its id alone, checked as ``visible_run`` on its thread, read with its feedback."""
    async with loom.sessions() as session:
        run = await owned_run(session, None, run_id, caller.identity)
        if run.thread_id is None:
            return run
        return await visible_run(session, public_thread_id(run.thread_id), run_id, caller, action)
