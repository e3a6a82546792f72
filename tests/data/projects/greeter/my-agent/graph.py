"""A project laid out as a user's would be: a hyphenated folder, its own context schema, no Loom imports."""

import os
from dataclasses import dataclass
from typing import Annotated

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


@dataclass
class Context:
    greeting: str = "Hello"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def greet(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> dict[str, list[AnyMessage]]:
    user = config["configurable"].get("langgraph_auth_user_id", "nobody")
    turn = sum(1 for m in state["messages"] if m.type == "human")
    text = f"{runtime.context.greeting}, {user}{os.environ.get('GREETER_PUNCTUATION', '.')} (turn {turn})"
    return {"messages": [AIMessage(text)]}


builder = StateGraph(State, context_schema=Context)
builder.add_node(greet)
builder.set_entry_point("greet")
graph = builder.compile(name="Greeter")
