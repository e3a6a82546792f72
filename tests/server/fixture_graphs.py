"""Small graphs that make server behaviour observable: a gated run, an approval, a failure.

``gated`` runs ``step_one`` (counting its executions in a file), then waits until the test opens
the gate file for its thread; so a test decides exactly when a run is busy, and can prove after a
crash that a checkpointed node did not run again. ``refunding`` is ``gated`` with a real refund (the
support graph's account store and idempotency keys) before the gate, and logs when each process
begins and ends waiting, so a test can prove that no run was ever executed by two workers at once.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import os
import time
from pathlib import Path
from typing import Annotated, Any, NotRequired

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer, RetryPolicy, interrupt
from typing_extensions import TypedDict

from loom.settings import get_settings
from loom.threads import public_thread_id
from nodes.models import is_transient_error
from nodes.tools.charts import render_chart
from services.stores import account_actions
from services.stores.accounts import IdempotencyKey, get_accounts_db
from state.common import RunContext


class GatedState(TypedDict):
    log: Annotated[list[str], operator.add]


def gate_dir() -> Path:
    path = get_settings().data_dir / "gates"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _thread(config: RunnableConfig) -> str:
    return public_thread_id(str(config["configurable"]["thread_id"]))


def _count(counter: Path) -> None:
    counter.write_text(str(int(counter.read_text() or 0) + 1 if counter.exists() else 1))


async def step_one(state: GatedState, config: RunnableConfig) -> dict[str, Any]:
    counter = await asyncio.to_thread(gate_dir) / f"{_thread(config)}.step_one"
    await asyncio.to_thread(_count, counter)  # file work off the loop: the server detects blocking calls
    get_stream_writer()({"event": "step_one_done"})
    return {"log": ["step_one"]}


async def wait_for_gate(state: GatedState, config: RunnableConfig) -> dict[str, Any]:
    gate = await asyncio.to_thread(gate_dir) / f"{_thread(config)}.open"
    while not await asyncio.to_thread(gate.exists):  # the graph waits on the test; the test never sleeps
        await asyncio.sleep(0.02)
    return {"log": ["gate_passed"]}


def _log_execution(config: RunnableConfig, what: str) -> None:
    """One line per event, appended by any worker process: run id, pid, begin/end, system-wide monotonic ns."""
    line = f"{config['metadata']['run_id']} {os.getpid()} {what} {time.monotonic_ns()}\n"
    with (gate_dir() / "executions.log").open("a") as log:
        log.write(line)


async def logged_wait_for_gate(state: GatedState, config: RunnableConfig) -> dict[str, Any]:
    await asyncio.to_thread(_log_execution, config, "begin")
    update = await wait_for_gate(state, config)
    await asyncio.to_thread(_log_execution, config, "end")
    return update


def refund(state: GatedState, config: RunnableConfig) -> dict[str, Any]:
    """A 1-cent refund of the demo customer's INV-1001, applied once per run (keyed by thread and run id)."""
    key = IdempotencyKey(_thread(config), str(config["metadata"]["run_id"]))
    effect = functools.partial(account_actions.refund, user_id="demo", invoice_id="INV-1001", amount_cents=1)
    get_accounts_db().apply_once(key, "issue_refund", {"amount_cents": 1}, lambda s, k: effect(s, key=k))
    return {"log": ["refunded"]}


def build_refunding(checkpointer: Checkpointer = None) -> Any:
    builder = StateGraph(GatedState)
    builder.add_node("step_one", step_one)
    builder.add_node("refund", refund)
    builder.add_node("wait_for_gate", logged_wait_for_gate)
    builder.add_edge(START, "step_one")
    builder.add_edge("step_one", "refund")
    builder.add_edge("refund", "wait_for_gate")
    builder.add_edge("wait_for_gate", END)
    return builder.compile(checkpointer=checkpointer, name="refunding")


def build_gated(checkpointer: Checkpointer = None) -> Any:
    builder = StateGraph(GatedState)
    builder.add_node("step_one", step_one)
    builder.add_node("wait_for_gate", wait_for_gate)
    builder.add_edge(START, "step_one")
    builder.add_edge("step_one", "wait_for_gate")
    builder.add_edge("wait_for_gate", END)
    return builder.compile(checkpointer=checkpointer, name="gated")


def one_node(state: Any, node: Any, name: str, checkpointer: Checkpointer, **schemas: Any) -> Any:
    """START → ``node`` (named after its function), the shape of most fixtures here."""
    builder = StateGraph(state, **schemas)
    builder.add_node(node.__name__, node)
    builder.add_edge(START, node.__name__)
    return builder.compile(checkpointer=checkpointer, name=name)


class ApprovalState(TypedDict):
    request: str
    decision: str
    hold: NotRequired[bool]
    """Wait at the thread's gate before asking, so a test can queue runs behind this one."""


async def ask_approval(state: ApprovalState, config: RunnableConfig) -> dict[str, Any]:
    if state.get("hold"):
        await wait_for_gate({"log": []}, config)
    answer = interrupt({"question": f"approve {state['request']}?"})
    return {"decision": str(answer)}


def build_approval(checkpointer: Checkpointer = None) -> Any:
    builder = StateGraph(ApprovalState)
    builder.add_node("ask_approval", ask_approval)
    builder.add_edge(START, "ask_approval")
    builder.add_edge("ask_approval", END)
    return builder.compile(checkpointer=checkpointer, name="approval")


def explode(state: GatedState) -> dict[str, Any]:
    raise RuntimeError("this node always fails")


def build_failing(checkpointer: Checkpointer = None) -> Any:
    return one_node(GatedState, explode, "failing", checkpointer)


async def chart_on_the_loop(state: GatedState, config: RunnableConfig) -> dict[str, Any]:
    """An async node that calls Loom's synchronous chart renderer (file writes) on the event loop."""
    folder = await asyncio.to_thread(gate_dir)
    render_chart(["a", "b"], [1.0, 2.0], "blocking", "bar", folder)
    return {"log": ["charted"]}


def build_blocking(checkpointer: Checkpointer = None) -> Any:
    return one_node(GatedState, chart_on_the_loop, "blocking", checkpointer)


class ProviderDown(Exception):
    """Looks like a provider's 503 to ``is_transient_error``."""

    status_code = 503


def call_flaky_provider(state: GatedState, config: RunnableConfig) -> dict[str, Any]:
    counter = gate_dir() / f"{_thread(config)}.attempts"
    counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
    raise ProviderDown("provider unavailable (503)")


def build_flaky(checkpointer: Checkpointer = None) -> Any:
    """Retries forever by its own policy, so only the run's retry budget can stop it."""
    builder = StateGraph(GatedState)
    policy = RetryPolicy(max_attempts=1000, initial_interval=0.001, max_interval=0.001, retry_on=is_transient_error)
    builder.add_node("call_flaky_provider", call_flaky_provider, retry_policy=policy)
    builder.add_edge(START, "call_flaky_provider")
    return builder.compile(checkpointer=checkpointer, name="flaky")


class WhoamiState(TypedDict):
    request: str
    user_id: NotRequired[str]
    permissions: NotRequired[list[str]]


def whoami(state: WhoamiState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Reports the run context the server built, so a test sees exactly what tools would be granted."""
    return {"user_id": runtime.context.user_id, "permissions": list(runtime.context.permissions)}


def build_whoami(checkpointer: Checkpointer = None) -> Any:
    return one_node(WhoamiState, whoami, "whoami", checkpointer, context_schema=RunContext)


class ConfigProbeState(TypedDict):
    seen: NotRequired[dict[str, Any]]


def report_config(state: ConfigProbeState, config: RunnableConfig) -> dict[str, Any]:
    """Reports the ids a graph finds in its config, where langgraph-api puts them."""
    configurable, metadata = config.get("configurable") or {}, config.get("metadata") or {}
    wanted = ("run_id", "graph_id", "assistant_id", "user_id")
    return {
        "seen": {
            "configurable": {key: configurable.get(key) for key in wanted},
            "metadata": {key: metadata.get(key) for key in (*wanted, "run_attempt")},
            "labels": {key: metadata.get(key) for key in ("tenant", "channel")},
        }
    }


def build_config_probe(checkpointer: Checkpointer = None) -> Any:
    return one_node(ConfigProbeState, report_config, "config_probe", checkpointer)


class ToolLoopState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def ask_for_a_product(state: ToolLoopState) -> dict[str, Any]:
    """A stand-in for a model that calls a tool: the shape of LangGraph's ReAct templates, with plain messages."""
    call = {"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1", "type": "tool_call"}
    return {"messages": [AIMessage(content="", tool_calls=[call])]}


def build_tool_loop(checkpointer: Checkpointer = None) -> Any:
    builder = StateGraph(ToolLoopState)
    builder.add_node("ask_for_a_product", ask_for_a_product)
    builder.add_node("tools", ToolNode([multiply]))
    builder.add_edge(START, "ask_for_a_product")
    builder.add_edge("ask_for_a_product", "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=checkpointer, name="tool_loop")
