"""A refund survives a crash between its side effect and the checkpoint, and is applied exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import select
from sqlalchemy.orm import Session

from graphs.support import build_graph
from nodes.models.fake import tool_call
from services.stores.accounts import Payment, SideEffect, get_accounts_db
from state.common import RunContext
from tests.fixtures.models import ScriptedModels
from tests.graphs.support_crash_run import CRASH_EXIT

SCRIPT = Path(__file__).with_name("support_crash_run.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"configurable": {"thread_id": "crash-1"}}
ALICE = RunContext(user_id="alice")


def refund_rows() -> list[Payment]:
    with Session(get_accounts_db().engine) as session:
        return list(session.scalars(select(Payment).where(Payment.kind == "refund")))


async def test_resume_after_crash_mid_refund_refunds_exactly_once(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    refund = tool_call("issue_refund", {"invoice_id": "INV-2003", "reason": "duplicate charge"}, "call_refund")
    models = scripted(billing=[refund, "Your refund is on its way."])
    graph = build_graph(models, checkpointer)
    await graph.ainvoke({"messages": [HumanMessage("Refund my last invoice")]}, CONFIG, context=ALICE)
    assert (await graph.aget_state(CONFIG)).interrupts  # waiting for approval

    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    crashed = subprocess.run(
        [sys.executable, str(SCRIPT), "crash-1", "alice"], env=env, capture_output=True, text=True, timeout=120
    )
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    assert len(refund_rows()) == 1  # the side effect landed…
    after_crash = await graph.aget_state(CONFIG)
    assert after_crash.next == ("tools",)  # …but the tools step never checkpointed

    state = await graph.ainvoke(None, CONFIG, context=ALICE)  # resume the thread in this process
    result = next(m for m in state["messages"] if isinstance(m, ToolMessage) and m.name == "issue_refund")
    assert json.loads(result.text)["note"].startswith("already applied")
    assert state["messages"][-1].text == "Your refund is on its way."
    await graph.ainvoke(None, CONFIG, context=ALICE)  # and once more, for good measure
    (row,) = refund_rows()
    assert row.amount_cents == 9900
    with Session(get_accounts_db().engine) as session:
        assert len(session.scalars(select(SideEffect)).all()) == 1
