"""A graph factory as langgraph-api documents it ("rebuild graph at runtime"): it takes the config and a
``ServerRuntime`` and builds a different tool list per user (admins get ``delete_user``) and per run context
(``clock``). It checks what it is given and appends each call to the file ``TOOLBOX_CALLS`` names, so a test
sees every access context it was called for. Written as Aegra's own factory example is; no Loom imports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import ServerRuntime

ACCESS = {"threads.create_run", "threads.update", "threads.read", "assistants.read"}


@dataclass
class Context:
    clock: bool = False


def tools_for(permissions: list[str], context: Context | None) -> list[str]:
    admin = ["delete_user"] if "admin" in permissions else []
    return ["search", *admin, *(["clock"] if context and context.clock else [])]


def checked(runtime: ServerRuntime[Context]) -> Context | None:
    """What langgraph-api promises: a known access context, a store, a run's context only when executing."""
    executing = runtime.execution_runtime
    if runtime.access_context not in ACCESS or not isinstance(runtime.store, BaseStore):
        raise RuntimeError(f"called with {runtime!r}")
    if (executing is not None) != (runtime.access_context == "threads.create_run"):
        raise RuntimeError(f"{runtime.access_context}: execution_runtime is {executing!r}")
    if executing is not None and not isinstance(executing.context, Context):
        raise RuntimeError(f"the run's context is a {type(executing.context).__name__}, not a Context")
    return executing.context if executing is not None else None


def append(line: str) -> None:
    with open(os.environ["TOOLBOX_CALLS"], "a") as calls:
        calls.write(line + "\n")


@contextlib.asynccontextmanager
async def graph(config: dict[str, Any], runtime: ServerRuntime[Context]) -> AsyncIterator[Any]:
    context = checked(runtime)
    user = runtime.user
    identity = user.identity if user is not None else None
    if identity == "eve":
        raise PermissionError("eve may not use the toolbox")
    tools = tools_for(list(user.permissions) if user is not None else [], context)
    record = {"access": runtime.access_context, "user": identity, "context": context and asdict(context)}
    await asyncio.to_thread(append, json.dumps({**record, "tools": tools}))
    if context is not None:  # the store a run's factory gets is the caller's own
        await runtime.store.aput(("toolbox",), "last_tools", {"tools": tools})

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"{identity} may use {', '.join(tools)}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    for tool in tools:
        builder.add_node(tool, lambda state: {"messages": []})
        builder.add_edge("agent", tool)
        builder.add_edge(tool, END)
    yield builder.compile(name="Toolbox")
