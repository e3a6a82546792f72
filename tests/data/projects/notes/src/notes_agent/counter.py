"""An uncompiled StateGraph named by module path: the server compiles it with its own checkpointer."""

from langgraph.graph import StateGraph

from notes_agent.state import State


def count(state: State) -> dict[str, int]:
    return {"count": state.get("count", 0) + 1}


builder = StateGraph(State)
builder.add_node(count)
builder.set_entry_point("count")
