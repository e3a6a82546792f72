"""A graph whose context schema is a TypedDict, as in LangChain's new-langgraph-project template: it echoes the
context LangGraph hands it (a dict with only the keys the run was given; None when that is empty)."""

from typing import Any

from langgraph.graph import StateGraph
from langgraph.managed import IsLastStep
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class Context(TypedDict):
    tone: str
    """Required, as the template's ``my_configurable_param``; LangGraph itself never checks that it is there."""


class State(TypedDict, total=False):
    said: str
    heard: dict[str, Any]
    is_last_step: IsLastStep  # a managed value, as in the react-agent template: LangGraph's, not state


def echo(state: State, runtime: Runtime[Context]) -> State:
    return {"heard": dict(runtime.context or {})}


builder = StateGraph(State, context_schema=Context)
builder.add_node(echo)
builder.set_entry_point("echo")
graph = builder.compile(name="Echo")
