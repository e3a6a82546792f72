"""The tools of the MCP servers in ``LOOM_MCP_SERVERS``, for Loom's agents (the client side of MCP).

Each server's tool list is fetched through langchain-mcp-adapters with a time limit
(``mcp_list_timeout_s``) and reused for ``mcp_tools_ttl_s``; a server that cannot be listed keeps
the tools it last had (or none) until the next try, and the run goes on without it. Every tool call
opens its own session, is bounded by ``mcp_call_timeout_s``, and a failure of the server (down,
slow, connection cut) comes back to the model as an error result that names the server: it never
fails the run. Each tool carries its permission level (``metadata["permission"]``, seed 003).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.interceptors import MCPToolCallRequest, MCPToolCallResult
from mcp.types import CallToolResult, TextContent

from loom.settings import McpServer, get_settings

log = logging.getLogger(__name__)


def root_cause(error: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio wraps a transport's failure in one), else ``error``."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def describe(error: BaseException, timeout: float) -> str:
    cause = root_cause(error)
    if isinstance(cause, TimeoutError):
        return f"no answer within {timeout:g} s"
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


@dataclass
class Listing:
    """One server's cached tool list and when it was last fetched (or tried)."""

    tools: list[BaseTool] = field(default_factory=list)
    fetched_at: float | None = None


class McpToolbox:
    """The tools of a set of MCP servers, each listed with a time limit and cached for ``ttl`` seconds."""

    def __init__(
        self,
        servers: dict[str, McpServer],
        list_timeout: float,
        call_timeout: float,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servers = servers
        self.list_timeout, self.call_timeout, self.ttl = list_timeout, call_timeout, ttl
        self.clock = clock
        self.client = MultiServerMCPClient(
            {name: server.connection() for name, server in servers.items()},  # type: ignore[misc]
            tool_interceptors=[self._bounded],
        )
        self.listings = {name: Listing() for name in servers}

    async def tools(self) -> list[BaseTool]:
        """Every server's tools, refreshing the lists older than the TTL; the first of two same names wins."""
        stale = [name for name, listing in self.listings.items() if self._stale(listing)]
        await asyncio.gather(*(self._refresh(name) for name in stale))
        unique: dict[str, BaseTool] = {}
        for listing in self.listings.values():
            for tool in listing.tools:
                unique.setdefault(tool.name, tool)
        return list(unique.values())

    def _stale(self, listing: Listing) -> bool:
        return listing.fetched_at is None or self.clock() - listing.fetched_at >= self.ttl

    async def _refresh(self, name: str) -> None:
        listing = self.listings[name]
        try:
            async with asyncio.timeout(self.list_timeout):
                tools = await self.client.get_tools(server_name=name)
        except Exception as exc:  # any failure of the server: keep what it had, try again after the TTL
            log.warning("MCP server %r: listing its tools failed (%s)", name, describe(exc, self.list_timeout))
        else:
            server = self.servers[name]
            for tool in tools:
                tool.metadata = {**(tool.metadata or {}), "permission": server.level_of(tool.name), "mcp_server": name}
            listing.tools = tools
        listing.fetched_at = self.clock()

    async def _bounded(
        self, request: MCPToolCallRequest, handler: Callable[[MCPToolCallRequest], Awaitable[MCPToolCallResult]]
    ) -> MCPToolCallResult:
        """One tool call, bounded in time; a failing server becomes an error result the model reads."""
        try:
            async with asyncio.timeout(self.call_timeout):
                return await handler(request)
        except Exception as exc:
            why = describe(exc, self.call_timeout)
            text = (
                f"The MCP server {request.server_name!r} failed while running {request.name}: {why}. "
                "It may be down or slow; do not assume the action happened, and tell the user."
            )
            return CallToolResult(content=[TextContent(type="text", text=text)], isError=True)


@lru_cache(maxsize=4)
def _toolbox(config: str) -> McpToolbox:
    raw = json.loads(config)
    servers = {name: McpServer.model_validate(server) for name, server in raw["servers"].items()}
    return McpToolbox(servers, raw["list_timeout"], raw["call_timeout"], raw["ttl"])


async def mcp_tools() -> list[BaseTool]:
    """The tools of the MCP servers the settings name (none when none are named), from the cache when fresh."""
    settings = get_settings()
    if not settings.mcp_servers:
        return []
    config: dict[str, Any] = {
        "servers": {name: server.model_dump() for name, server in settings.mcp_servers.items()},
        "list_timeout": settings.mcp_list_timeout_s,
        "call_timeout": settings.mcp_call_timeout_s,
        "ttl": settings.mcp_tools_ttl_s,
    }
    return await _toolbox(json.dumps(config, sort_keys=True)).tools()
