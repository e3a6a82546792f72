"""Running one plan step: resolve its references, call its tool (or reason), retry with backoff (seed 004).

Each ready step arrives through ``Send`` as its own task, so parallel steps run at once. Retries live
inside the step rather than in a ``RetryPolicy`` because a step that still fails must become a
recorded failure the graph can replan around, not an exception that ends the run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.errors import GraphBubbleUp
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolInvocationError
from langgraph.runtime import Runtime
from pydantic import ValidationError

from loom.settings import get_settings
from nodes.common.permissions import is_granted, needs_approval, permission_of
from nodes.plan_execute.plans import StepInputError, preview, resolve_refs
from nodes.tools.errors import PermanentToolError
from state.common import RunContext
from state.plan_execute import StepFailure, StepResult, StepSpec, StepTask

PERMANENT = (PermanentToolError, StepInputError, ToolInvocationError, ValidationError, PermissionError)
"""Failures a retry cannot fix; the step goes straight to replanning."""

REASONER = (
    "You carry out one step of a larger plan. Use the tools if the step needs facts you do not have; otherwise "
    "reason over the given inputs. Answer with the step's result only, concisely."
)


async def backoff(seconds: float) -> None:
    """The wait before a retry (a seam for tests that record the schedule instead of sleeping)."""
    await asyncio.sleep(seconds)


def retry_delays(retries: int, initial_s: float, factor: float) -> list[float]:
    """Seed 004's schedule: retry 1 immediately, then ``initial_s``, doubling (0, 0.1, 0.2, 0.4 …)."""
    return [0.0 if n == 0 else initial_s * factor ** (n - 1) for n in range(retries)]


def make_step_runner(tools: Mapping[str, BaseTool], reasoner: Runnable[Any, Any]) -> Any:
    """The ``run_step`` node; ``reasoner`` is the small ReAct graph used by steps without a tool."""

    async def run_step(task: StepTask, config: RunnableConfig, runtime: Runtime[RunContext]) -> dict[str, Any]:
        step, writer = task["step"], get_stream_writer()
        settings = get_settings()
        delays = retry_delays(settings.plan_step_retries, settings.plan_retry_initial_s, settings.plan_retry_backoff)
        writer({"event": "step_started", "step": step["id"], "tool": step["tool"], "description": step["description"]})
        for attempt in range(1, len(delays) + 2):
            try:
                arguments = resolve_refs(step["arguments"], task["inputs"])
                output, usage = await _execute(step, arguments, task, tools, reasoner, config, runtime)
            except GraphBubbleUp:
                raise
            except Exception as exc:
                retry = attempt <= len(delays) and not isinstance(exc, PERMANENT)
                error = f"{type(exc).__name__}: {exc}"
                writer({"event": "step_failed", "step": step["id"], "attempt": attempt, "error": error, "retry": retry})
                if not retry:
                    return {"failures": [_failure(step, task, error, attempt)]}
                await backoff(delays[attempt - 1])
                continue
            writer({"event": "step_completed", "step": step["id"], "attempt": attempt, "output": preview(output)})
            result = StepResult(step=step["id"], tool=step["tool"], output=output, attempts=attempt)
            return {"results": {step["id"]: result}, "usage": usage}
        raise AssertionError("unreachable: the last attempt returns")

    return run_step


async def _execute(
    step: StepSpec,
    arguments: dict[str, Any],
    task: StepTask,
    tools: Mapping[str, BaseTool],
    reasoner: Runnable[Any, Any],
    config: RunnableConfig,
    runtime: Runtime[RunContext],
) -> tuple[Any, list[Any]]:
    if step["tool"] is None:
        return await _reason(step, arguments, task, reasoner, config, runtime)
    tool = tools[step["tool"]]
    context = runtime.context or RunContext()
    if not task["approved"] and (needs_approval(tool) or not is_granted(tool, context)):
        raise PermissionError(f"{tool.name} needs the {permission_of(tool)!r} permission and was not approved")
    call = ToolCall(name=tool.name, args=arguments, id=f"{step['id']}-{task['generation']}", type="tool_call")
    tool_node = ToolNode([tool], handle_tool_errors=False)  # per call: ``tools`` may be a live registry
    update = await tool_node.ainvoke({"messages": [AIMessage(content="", tool_calls=[call])]}, config)
    return tool_output(update["messages"][-1]), []


async def _reason(
    step: StepSpec,
    arguments: dict[str, Any],
    task: StepTask,
    reasoner: Runnable[Any, Any],
    config: RunnableConfig,
    runtime: Runtime[RunContext],
) -> tuple[Any, list[Any]]:
    inputs = json.dumps({"arguments": arguments, "earlier_results": task["inputs"]}, default=str, ensure_ascii=False)
    prompt = f"The user's request: {task['request']}\nThis step: {step['description']}\nInputs: {inputs[:6000]}"
    final = await reasoner.ainvoke({"messages": [HumanMessage(content=prompt)]}, config, context=runtime.context)
    answer = final["messages"][-1]
    if not isinstance(answer, AIMessage) or not answer.text.strip():
        raise RuntimeError("the reasoning step produced no answer")
    return answer.text, final.get("usage", [])


def tool_output(message: Any) -> Any:
    """A tool's result as data: its artifact if structured, else its JSON content, else its text."""
    if not isinstance(message, ToolMessage):
        raise RuntimeError(f"the tool returned {type(message).__name__}, not a result")
    if message.status == "error":
        raise RuntimeError(message.text)
    if isinstance(message.artifact, dict):
        return message.artifact
    try:
        return json.loads(message.text)
    except ValueError:
        return message.text if message.artifact is None else {"text": message.text, "data": message.artifact}


def _failure(step: StepSpec, task: StepTask, error: str, attempts: int) -> StepFailure:
    return StepFailure(
        step=step["id"],
        tool=step["tool"],
        arguments=step["arguments"],
        error=error[:2000],
        attempts=attempts,
        generation=task["generation"],
    )
