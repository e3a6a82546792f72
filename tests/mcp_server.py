"""A small MCP server for the tests, on the official SDK's FastMCP: a read tool and a destructive tool.

``python -m tests.mcp_server stdio`` speaks MCP over stdin/stdout; ``python -m tests.mcp_server http PORT``
serves Streamable HTTP at ``http://127.0.0.1:PORT/mcp`` (and ``/ok`` once it listens). ``delete_note``
appends the title it deletes to the file named by ``MCP_TEST_JOURNAL``, so a test can tell whether it ran.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import PlainTextResponse

PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
server = FastMCP("notes", host="127.0.0.1", port=PORT, log_level="WARNING")
NOTES = {"groceries": "milk, eggs, bread", "ideas": "an MCP server for the shop"}


@server.tool()
def read_note(title: str) -> str:
    """Read one of the user's notes by its title."""
    return NOTES.get(title, f"no note called {title!r}")


@server.tool()
def delete_note(title: str) -> str:
    """Delete one of the user's notes for good."""
    with Path(os.environ["MCP_TEST_JOURNAL"]).open("a") as journal:
        journal.write(title + "\n")
    return f"deleted {title}"


@server.custom_route("/ok", methods=["GET"])
async def ok(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


if __name__ == "__main__":
    server.run("stdio" if sys.argv[1] == "stdio" else "streamable-http")
