"""Where tools may read and write: per-user workspaces and per-thread artifact folders.

Every path a model or caller names is resolved here and must stay inside its root, so no
argument like ``../../etc/passwd`` or a symlink can reach another user's files.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from langchain_core.runnables import RunnableConfig

from loom.settings import Settings, get_settings
from loom.threads import public_thread_id

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


def safe_id(value: str) -> str:
    """A user id as one path component, a different one for each id.

    An id that is already a plain name (letters, digits, ``_.-``, no leading or trailing dot, at most 128
    characters) is its own folder name. Any other is cleaned and given a digest of the whole id after a
    ``~``, which no plain name contains: ``j@x`` and ``j_x``, or ``.alice`` and ``alice``, never share a
    folder.
    """
    cleaned = _SAFE_ID.sub("_", value).strip(".") or "_"
    if cleaned == value and len(value) <= 128:
        return value
    digest = hashlib.sha256(value.encode(errors="surrogatepass")).hexdigest()[:24]
    return f"{cleaned[:100]}~{digest}"


def inside(root: Path, name: str) -> Path:
    """``root/name`` if it stays within ``root`` after resolving links; else ``PermissionError``."""
    if "\0" in name:  # the OS cannot name it; refusing here keeps it a PermissionError, not a ValueError
        raise PermissionError("a path may not contain NUL")
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


def _thread_id(config: RunnableConfig | None) -> str:
    """The thread's id as its owner knows it (the checkpointer's key carries an owner digest)."""
    return public_thread_id(str(((config or {}).get("configurable") or {}).get("thread_id") or "unthreaded"))


def artifact_url(config: RunnableConfig | None, path: Path) -> str:
    return f"/threads/{_thread_id(config)}/artifacts/{path.name}"


def artifacts_folder(settings: Settings, user_id: str, thread_id: str) -> Path:
    """One folder per (owner, thread), named by a hash of both: no two ids share one, whatever characters
    they use (``proj:1`` and ``proj_1`` did under a cleaned-up name), and a thread id re-created by
    another user after a delete does not reach the first owner's files."""
    digest = hashlib.sha256(json.dumps([user_id, thread_id]).encode()).hexdigest()[:32]
    return settings.artifacts_dir / digest


def thread_artifacts_dir(settings: Settings, config: RunnableConfig | None, user_id: str) -> Path:
    """Where a tool run on behalf of ``user_id`` writes this thread's artifacts (created if needed)."""
    path = artifacts_folder(settings, user_id, _thread_id(config))
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact_file(settings: Settings, user_id: str, thread_id: str, name: str) -> Path:
    """An existing artifact by bare file name; anything else (separators, NUL, dot names) is FileNotFoundError."""
    if not name or name.startswith(".") or any(char in name for char in "/\\\0"):
        raise FileNotFoundError(name)
    try:
        path = inside(artifacts_folder(settings, user_id, thread_id), name)
    except PermissionError:
        raise FileNotFoundError(name) from None
    if not path.is_file():
        raise FileNotFoundError(name)
    return path


def remove_thread_artifacts(settings: Settings, user_id: str, thread_id: str) -> None:
    """Blocking (a directory walk): call it through ``asyncio.to_thread``."""
    shutil.rmtree(artifacts_folder(settings, user_id, thread_id), ignore_errors=True)
