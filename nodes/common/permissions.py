"""Tool permission levels (seed 003): read runs freely, write needs a grant, destructive needs a human.

A tool declares its level in ``tool.metadata["permission"]``; a run's grants come from
``RunContext.permissions``. Undeclared tools count as ``read``.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

from state.common import Permission, RunContext

LEVELS: tuple[Permission, ...] = ("read", "write", "destructive")


def declare(tool: BaseTool, level: Permission) -> BaseTool:
    """Mark ``tool`` with its permission level and return it (use at definition time)."""
    tool.metadata = {**(tool.metadata or {}), "permission": level}
    return tool


def permission_of(tool: BaseTool) -> Permission:
    level = (tool.metadata or {}).get("permission", "read")
    if level not in LEVELS:
        raise ValueError(f"tool {tool.name!r} declares unknown permission {level!r}")
    return level


def is_granted(tool: BaseTool, context: RunContext) -> bool:
    """Whether the run may call ``tool`` without asking; destructive tools always ask."""
    level = permission_of(tool)
    return level == "read" or (level == "write" and "write" in context.permissions)


def needs_approval(tool: BaseTool) -> bool:
    return permission_of(tool) == "destructive"
