"""Answer with what is remembered about the user; remember what the model decides to keep.

``call_model`` recalls the memories closest to the user's last message (semantic search in the store)
and puts them in the system prompt; when the model calls ``remember``, ``store_memory`` writes to the
store and the model answers again. Memories live under ``("memories",)``: the server keeps each
user's store apart, so the graph does not name the user.
"""

import os
import uuid
from functools import lru_cache
from typing import Literal

from langchain.chat_models import init_chat_model
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, StateGraph
from langgraph.runtime import Runtime

from memo_agent.context import Context
from memo_agent.state import State

NAMESPACE = ("memories",)


@tool
def remember(content: str) -> str:
    """Keep one fact about the user for later conversations."""
    return content


@lru_cache(maxsize=4)
def chat_model(name: str) -> BaseChatModel:
    return init_chat_model(name).bind_tools([remember])  # type: ignore[return-value]


async def call_model(state: State, runtime: Runtime[Context]) -> dict[str, list[AIMessage]]:
    question = next(m.text for m in reversed(state["messages"]) if m.type == "human")
    limit = int(os.environ.get("MEMO_RECALL_LIMIT", "5"))
    recalled = await runtime.store.asearch(NAMESPACE, query=question, limit=limit)
    memories = "\n".join(f"- {item.value['content']}" for item in recalled) or "- nothing yet"
    system = f"You are {runtime.context.persona}. What you remember about the user:\n{memories}"
    reply = await chat_model(runtime.context.model).ainvoke([("system", system), *state["messages"]])
    return {"messages": [reply]}


async def store_memory(state: State, runtime: Runtime[Context]) -> dict[str, list[ToolMessage]]:
    calls = state["messages"][-1].tool_calls  # type: ignore[attr-defined]
    for call in calls:
        await runtime.store.aput(NAMESPACE, str(uuid.uuid4()), {"content": call["args"]["content"]})
    return {"messages": [ToolMessage("remembered", tool_call_id=call["id"]) for call in calls]}


def route(state: State) -> Literal["store_memory", "__end__"]:
    last = state["messages"][-1]
    return "store_memory" if isinstance(last, AIMessage) and last.tool_calls else END


def make_graph(config: RunnableConfig) -> object:
    """The graph factory ``langgraph.json`` names; the server supplies checkpointer and store.

    The default model's client is built here, once: building one reads files, which blocks an event loop.
    """
    chat_model(Context().model)
    builder = StateGraph(State, context_schema=Context)
    builder.add_node(call_model)
    builder.add_node(store_memory)
    builder.set_entry_point("call_model")
    builder.add_conditional_edges("call_model", route)
    builder.add_edge("store_memory", "call_model")
    return builder.compile(name="Memo")
