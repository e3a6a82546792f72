"""Shared services for routes, and lookups that enforce ownership (another user's thread is a 404)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from loom.settings import Settings
from server import assistants
from server.assistants import AssistantRow
from server.db import RunRow, ThreadRow
from server.errors import not_found
from server.registry import graph_specs, load_module
from server.runs import RunManager


@dataclass
class Services:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    graphs: dict[str, CompiledStateGraph[Any, Any, Any, Any]]
    checkpointer: BaseCheckpointSaver[str]
    manager: RunManager
    store: BaseStore

    async def assistant(self, assistant_id: str, user: str) -> AssistantRow:
        """The assistant a run or cron names (an assistant id or a graph id); 404 if the caller cannot see it."""
        return await assistants.resolve(self.sessions, assistant_id, user, self.graphs)


@lru_cache(maxsize=256)
def graph_description(graph_id: str) -> str | None:
    """The first line of the graph module's docstring; read once (the lifespan primes it off the request path)."""
    module = load_module(graph_specs()[graph_id])
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Loom = Annotated[Services, Depends(get_services)]


async def owned_thread(session: AsyncSession, thread_id: str, user: str) -> ThreadRow:
    thread = await session.get(ThreadRow, thread_id)
    if thread is None or thread.owner != user:
        raise not_found("thread", thread_id)
    return thread


async def owned_run(session: AsyncSession, thread_id: str | None, run_id: str, user: str) -> RunRow:
    run = await session.get(RunRow, run_id)
    if run is None or run.owner != user or (thread_id is not None and run.thread_id != thread_id):
        raise not_found("run", run_id)
    return run
