"""Where tools may read and write: per-user workspaces and per-thread artifact folders.

Every path a model or caller names is resolved here and must stay inside its root, so no
argument like ``../../etc/passwd`` or a symlink can reach another user's files.
"""

from __future__ import annotations

import re
from pathlib import Path

from langchain_core.runnables import RunnableConfig

from loom.settings import Settings, get_settings

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


def safe_id(value: str) -> str:
    """A user or thread id usable as one path component."""
    cleaned = _SAFE_ID.sub("_", value).strip(".") or "_"
    return cleaned[:128]


def inside(root: Path, name: str) -> Path:
    """``root/name`` if it stays within ``root`` after resolving links; else ``PermissionError``."""
    root = root.resolve()
    candidate = (root / name).resolve()
    if not candidate.is_relative_to(root):
        raise PermissionError(f"{name!r} is outside the allowed folder")
    return candidate


def user_workspace(user_id: str, settings: Settings | None = None) -> Path:
    return (settings or get_settings()).workspaces_dir / safe_id(user_id)


def user_workspace_file(user_id: str, name: str) -> Path:
    """A file in the user's workspace by relative path, or by bare name if that is unique."""
    root = user_workspace(user_id)
    path = inside(root, name)
    if path.is_file():
        return path
    matches = [p for p in root.rglob(Path(name).name) if p.is_file()] if root.is_dir() else []
    if len(matches) == 1:
        return inside(root, str(matches[0].relative_to(root)))
    raise FileNotFoundError(f"no file {name!r} in your workspace" if not matches else f"{name!r} is ambiguous")


def artifact_url(config: RunnableConfig | None, path: Path) -> str:
    thread_id = str(((config or {}).get("configurable") or {}).get("thread_id") or "unthreaded")
    return f"/threads/{thread_id}/artifacts/{path.name}"


def thread_artifacts_dir(settings: Settings, config: RunnableConfig | None) -> Path:
    thread_id = str(((config or {}).get("configurable") or {}).get("thread_id") or "unthreaded")
    path = settings.artifacts_dir / safe_id(thread_id)
    path.mkdir(parents=True, exist_ok=True)
    return path
