"""Tools an agent finds at run time (an MCP server's), beside the ones its graph was built with."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel

ToolSource = Callable[[], Awaitable[Sequence[BaseTool]]]
"""Lists the tools found now, e.g. ``services.mcp.mcp_tools`` (cached, so cheap to call per step)."""


def args_schema(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of the tool's arguments (an MCP tool's comes as JSON schema already)."""
    model = tool.tool_call_schema
    if isinstance(model, dict):
        return model
    return model.model_json_schema() if isinstance(model, type) and issubclass(model, BaseModel) else {}


async def with_found(own: Sequence[BaseTool], found: ToolSource | None) -> list[BaseTool]:
    """``own`` plus the tools ``found`` lists now, except any whose name one of ``own`` already has."""
    if found is None:
        return list(own)
    names = {tool.name for tool in own}
    return [*own, *(tool for tool in await found() if tool.name not in names)]


class ToolRegistry(Mapping[str, BaseTool]):
    """A graph's own tools by name, plus the tools ``found`` listed at the last :meth:`refresh`.

    For nodes that read tools by name, synchronously (a plan's validator and approval): wrap them
    with :func:`refreshing` so the found tools are current in whichever process runs the node.
    """

    def __init__(self, own: Sequence[BaseTool], found: ToolSource | None = None) -> None:
        self.own = {tool.name: tool for tool in own}
        self.found = found
        self.extra: dict[str, BaseTool] = {}

    async def refresh(self) -> None:
        if self.found is not None:
            self.extra = {tool.name: tool for tool in await self.found() if tool.name not in self.own}

    def __getitem__(self, name: str) -> BaseTool:
        return self.own[name] if name in self.own else self.extra[name]

    def __iter__(self) -> Iterator[str]:
        return iter({**self.own, **self.extra})

    def __len__(self) -> int:
        return len(self.own.keys() | self.extra.keys())


def refreshing(node: Callable[..., Any], registry: ToolRegistry) -> Callable[..., Any]:
    """``node`` (sync or async, same signature, so LangGraph injects what it asks for) after a registry refresh."""

    @functools.wraps(node)
    async def refreshed(*args: Any, **kwargs: Any) -> Any:
        await registry.refresh()
        result = node(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return refreshed
