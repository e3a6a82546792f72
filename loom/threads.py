"""Thread ids belong to their owner: the key under which a thread is stored is derived from (owner, id).

Clients choose thread ids (``POST /threads {"thread_id": "proj-1"}``), so two users may pick the same one.
Every table, the checkpointer, the run engine and the event bus use the *key*, ``<id>~<owner digest>``, and
the API shows only the id, so another user's thread with the same id is invisible and never collides.
The key keeps the id as its prefix, so it reads back without a lookup and sorts like the id.
Threads stored before keys existed (migration 0005) keep their bare id as their key; their owner still
reaches them (``server.deps.find_thread`` tries the key, then the bare id).
"""

from __future__ import annotations

import hashlib
import re

SEPARATOR = "~"
"""Not allowed in a thread id a client creates (``[A-Za-z0-9_.:-]``), so a key is never mistaken for an id."""
_DIGEST = re.compile(r"[0-9a-f]{16}")


def thread_key(owner: str, thread_id: str) -> str:
    """The internal key of ``owner``'s thread ``thread_id``: the same for the same pair, different across owners."""
    return f"{thread_id}{SEPARATOR}{hashlib.sha256(owner.encode()).hexdigest()[:16]}"


def public_thread_id(key: str) -> str:
    """The id the API shows for a stored key (a key stored before scoping is its own id)."""
    head, separator, digest = key.rpartition(SEPARATOR)
    return head if separator and _DIGEST.fullmatch(digest) else key


def is_key(value: str) -> bool:
    return public_thread_id(value) != value


def thread_keys(owner: str, thread_id: str) -> list[str]:
    """Where ``owner``'s thread ``thread_id`` may be stored: under its key, or (made before keys) its bare id."""
    return [thread_key(owner, thread_id)] + ([] if is_key(thread_id) else [thread_id])
