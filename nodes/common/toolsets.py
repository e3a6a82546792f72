"""Tools an agent finds at run time (an MCP server's), beside the ones its graph was built with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from langchain_core.tools import BaseTool

ToolSource = Callable[[], Awaitable[Sequence[BaseTool]]]
"""Lists the tools found now, e.g. ``services.mcp.mcp_tools`` (cached, so cheap to call per step)."""


async def with_found(own: Sequence[BaseTool], found: ToolSource | None) -> list[BaseTool]:
    """``own`` plus the tools ``found`` lists now, except any whose name one of ``own`` already has."""
    if found is None:
        return list(own)
    names = {tool.name for tool in own}
    return [*own, *(tool for tool in await found() if tool.name not in names)]
