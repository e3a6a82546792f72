"""A src/ package with absolute imports, served through an async factory that takes a config."""

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph

from notes_agent.state import State


def take_note(state: State) -> dict[str, object]:
    notes = [m.text for m in state["messages"] if m.type == "human"]
    return {"messages": [AIMessage(f"{len(notes)} notes: {'; '.join(notes)}")]}


async def make_graph(config: RunnableConfig) -> object:
    builder = StateGraph(State)
    builder.add_node(take_note)
    builder.set_entry_point("take_note")
    return builder.compile()
