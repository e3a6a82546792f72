"""Tool failures: transient ones are retried by the tool node's policy, the rest are told to the model."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from nodes.models import TRANSIENT_RETRY
from nodes.tools.errors import tool_error_message

attempts: list[str] = []


@tool
def flaky_lookup(key: str) -> str:
    """Times out on its first call, as a provider under load would."""
    attempts.append(key)
    if len(attempts) == 1:
        raise TimeoutError("upstream timed out")
    return f"value of {key}"


@tool
def strict_lookup(key: str) -> str:
    """Rejects a bad key: retrying the same call cannot help."""
    raise ValueError(f"no such key {key!r}; valid keys are 'a' and 'b'")


def tools_graph() -> Any:
    builder = StateGraph(MessagesState)
    node = ToolNode([flaky_lookup, strict_lookup], handle_tool_errors=tool_error_message)
    builder.add_node("tools", node, retry_policy=TRANSIENT_RETRY)
    builder.add_edge(START, "tools")
    return builder.compile()


def call(name: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": {"key": "k"}, "id": f"call_{name}"}])


async def test_a_transient_tool_error_is_retried_with_backoff_not_shown_to_the_model() -> None:
    attempts.clear()
    result = await tools_graph().ainvoke({"messages": [call("flaky_lookup")]})
    reply = result["messages"][-1]
    assert isinstance(reply, ToolMessage) and reply.text == "value of k" and reply.status == "success"
    assert attempts == ["k", "k"]


async def test_a_permanent_tool_error_reaches_the_model_with_what_is_valid() -> None:
    result = await tools_graph().ainvoke({"messages": [call("strict_lookup")]})
    reply = result["messages"][-1]
    assert isinstance(reply, ToolMessage) and reply.status == "error"
    assert "valid keys are 'a' and 'b'" in reply.text
