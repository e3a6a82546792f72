"""Says who it runs for, from what the server puts in the config; no Loom imports."""

from typing import Annotated

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def whoami(state: State, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
    user = config["configurable"]["langgraph_auth_user"]
    permissions = ",".join(user.get("permissions", []))
    return {"messages": [AIMessage(f"{user['identity']} ({user.get('display_name')}) may {permissions}")]}


builder = StateGraph(State)
builder.add_node(whoami)
builder.set_entry_point("whoami")
graph = builder.compile(name="Echo")
