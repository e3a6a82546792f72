"""A reusable tool-calling agent node: system prompt + history → model (+ tools) → reply."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from loom.settings import get_settings
from nodes.common.dispatch import Dispatcher
from nodes.common.memory import memory_prompt
from nodes.common.toolsets import ToolSource, with_found
from nodes.models import ModelProvider, call_model, model_for
from state.common import Artifact, RunContext

HISTORY_MESSAGES = 24
"""Messages of history an agent sees; older turns stay in the checkpoint but not in the prompt."""


def make_agent(
    role: str,
    instructions: str,
    models: ModelProvider,
    tools: Sequence[BaseTool] = (),
    dispatch: Dispatcher | None = None,
    answers_user: bool = False,
    found: ToolSource | None = None,
) -> Any:
    """A node that answers as ``role``; with tools it may call them, up to ``max_tool_rounds``.

    ``dispatch`` builds the first tool calls straight from a plain request (see ``nodes.common.dispatch``).
    ``answers_user``: its reply after a tool round goes to a person, so where settings say the model
    cannot be trusted to summarise tool output (``quote_tool_results``), the results are the reply.
    ``found`` adds the tools found at run time (an MCP server's) to ``tools``.
    """

    async def agent(state: dict[str, Any], config: RunnableConfig, runtime: Runtime[RunContext]) -> dict[str, Any]:
        history = this_conversation(state["messages"])
        settings = get_settings()
        plain_request = dispatch and settings.direct_tool_dispatch and isinstance(history[-1], HumanMessage)
        if plain_request and dispatch and (calls := dispatch(history[-1].text)):
            get_stream_writer()({"event": "tool_dispatch", "agent": role, "calls": calls})
            return {"messages": [AIMessage(content="", tool_calls=calls)]}
        if answers_user and isinstance(history[-1], ToolMessage) and settings.quotes_tool_results(role):
            reply = AIMessage(content=quoted_results(history))
            return {"messages": [reply], "artifacts": artifacts_this_turn(state["messages"])}
        model: Any = await model_for(models, role)
        if (bound := await with_found(tools, found)) and tool_rounds_this_turn(history) < settings.max_tool_rounds:
            model = model.bind_tools(bound)
        context = runtime.context or RunContext()
        remembered = memory_prompt(state.get("memories") or [], context.user_name)
        system = SystemMessage(
            content=f"{instructions}\nYou are helping {context.user_name}. Today is {date.today().isoformat()}."
            + (f"\n{remembered}" if remembered else "")
        )
        reply, usage = await call_model(model, [system, *history], node=role, config=config)
        update: dict[str, Any] = {"messages": [reply], "usage": [usage]}
        if not reply.tool_calls:
            update["artifacts"] = artifacts_this_turn(state["messages"])
        return update

    agent.__name__ = role
    return agent


def after_agent(state: dict[str, Any]) -> Literal["tools", "router", "__end__"]:
    """After an agent: run its tools, go back to the router on a handoff, or finish."""
    last = state["messages"][-1]
    if not isinstance(last, AIMessage) or not last.tool_calls:
        return "__end__"
    return "router" if any(call["name"] == "hand_off" for call in last.tool_calls) else "tools"


def this_conversation(messages: list[AnyMessage]) -> list[AnyMessage]:
    """The recent history, cut at a user message so no tool result loses its call."""
    recent = messages[-HISTORY_MESSAGES:]
    for index, message in enumerate(recent):
        if isinstance(message, HumanMessage):
            return recent[index:]
    return recent


def messages_this_turn(messages: Sequence[AnyMessage]) -> Sequence[AnyMessage]:
    """What came after the latest user message: this turn's calls, results and replies."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return messages[index + 1 :]
    return messages


def tool_rounds_this_turn(messages: list[AnyMessage]) -> int:
    return sum(isinstance(m, AIMessage) and bool(m.tool_calls) for m in messages_this_turn(messages))


def quoted_results(history: list[AnyMessage]) -> str:
    """This turn's tool results, readable: a search's hits one per line, other records as ``readable_value``
    shows them, any other result as it came."""
    results = [m for m in messages_this_turn(history) if isinstance(m, ToolMessage)]
    return "\n\n".join(_readable(result) for result in results)


def readable_value(value: Any) -> str:
    """A tool's or a plan step's output for a person: each list of records one per line, else as it came."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, list) and item and all(isinstance(row, dict) for row in item):
                lines += [f"{key}:", *(f"- {_one_line(row)}" for row in item)]
            elif item not in (None, "", [], {}):
                lines.append(f"{key}: {item if not isinstance(item, list) else ', '.join(map(str, item))}")
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(f"- {_one_line(item)}" for item in value)
    return json.dumps(value, default=str, ensure_ascii=False)


def _readable(result: ToolMessage) -> str:
    try:
        data = json.loads(result.text)
    except ValueError:
        return result.text
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return readable_value(data) if isinstance(data, dict | list) else result.text
    source, window = data.get("source", result.name), data.get("window")
    if isinstance(window, dict):
        topic = f" matching “{window['topic']}”" if window.get("topic") else ""
        heading = f"{source}{topic}, {window.get('label')} ({window.get('from')} to {window.get('to')}):"
    else:
        heading = f"{source} matching “{data.get('query', '')}”:"
    hits = [f"- {_one_line(hit)}" for hit in data["results"]] or ["- nothing found"]
    return "\n".join([heading, *hits])


def _one_line(hit: Any) -> str:
    if isinstance(hit, list):
        return "; ".join(_one_line(item) for item in hit)
    if not isinstance(hit, dict):
        return str(hit)
    values = (
        f"({_one_line(value)})" if isinstance(value, list | dict) else str(value)
        for key, value in hit.items()
        if value not in (None, "", [], {}) and key not in HIDDEN_FIELDS
    )
    return " · ".join(value if len(value) <= 200 else value[:199] + "…" for value in values)


HIDDEN_FIELDS = frozenset({"id", "user_id", "score", "rank"})


def artifacts_this_turn(messages: list[AnyMessage]) -> list[Artifact]:
    return [
        m.artifact  # type: ignore[misc]
        for m in messages_this_turn(messages)
        if isinstance(m, ToolMessage) and isinstance(m.artifact, dict) and "url" in m.artifact
    ]
