"""State, input, output and context declared with ``typing.TypedDict``, as many tutorials do: pydantic refuses
those before Python 3.12, LangGraph does not, so neither may the server. No Loom imports."""

import operator
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime


class Style(TypedDict):
    shout: bool


class Context(TypedDict):
    tone: str
    style: Style


class Input(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    topic: str


class Output(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    topic: str
    seen: Annotated[list[str], operator.add]
    style: Style


def answer(state: State, runtime: Runtime[Context]) -> dict[str, object]:
    context = runtime.context or {}
    text = f"{context.get('tone', 'plain')} note on {state['topic']}"
    shout = context.get("style", {}).get("shout", False)
    return {"messages": [AIMessage(text.upper() if shout else text)], "seen": [state["topic"]]}


builder = StateGraph(State, input_schema=Input, output_schema=Output, context_schema=Context)
builder.add_node(answer)
builder.set_entry_point("answer")
graph = builder.compile(name="Typed")
