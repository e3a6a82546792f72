"""Subprocess for the crash test: approve a pending refund, then die right after the refund commits.

TEST HOOK, used only by ``test_support_crash.py``: this script wraps ``AccountsDB.apply_once`` so the
process calls ``os._exit(CRASH_EXIT)`` after the refund and its idempotency key are committed but before
the tool returns. LangGraph therefore never writes the tools node's checkpoint, which is what a crash
at the worst moment looks like. Production code has no such hook.

Usage: python support_crash_run.py THREAD_ID USER_ID   (settings come from the LOOM_* environment)
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from langgraph.types import Command

from graphs.support import build_graph
from loom.persistence import open_checkpointer
from loom.settings import get_settings
from nodes.models.fake import FakeChatModel
from services.stores.accounts import AccountsDB
from state.common import RunContext

CRASH_EXIT = 17


def crash_after_side_effects() -> None:
    original = AccountsDB.apply_once

    def apply_then_die(self: AccountsDB, *args: Any, **kwargs: Any) -> tuple[str, bool]:
        original(self, *args, **kwargs)
        os._exit(CRASH_EXIT)

    AccountsDB.apply_once = apply_then_die  # type: ignore[method-assign]


async def approve(thread_id: str, user_id: str) -> None:
    async with open_checkpointer(get_settings()) as checkpointer:
        graph = build_graph(lambda role: FakeChatModel(), checkpointer)
        config: Any = {"configurable": {"thread_id": thread_id}}
        # durability="sync": the approval step's checkpoint is on disk before the tools step starts,
        # so the crash lands in the tools step every time.
        await graph.ainvoke(
            Command(resume={"decision": "approve"}), config, context=RunContext(user_id=user_id), durability="sync"
        )


if __name__ == "__main__":
    crash_after_side_effects()
    asyncio.run(approve(sys.argv[1], sys.argv[2]))
    sys.exit(0)  # reached only if no side effect was applied
