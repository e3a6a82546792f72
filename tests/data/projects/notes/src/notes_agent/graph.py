"""A src/ package with absolute imports, served through an async factory that takes a config: the server
calls it for every run with that run's config, so ``configurable.separator`` shapes the graph it builds, and
``configurable.recap`` adds a node."""

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph

from notes_agent.state import State


def note_taker(separator: str) -> object:
    def take_note(state: State) -> dict[str, object]:
        notes = [m.text for m in state["messages"] if m.type == "human"]
        return {"messages": [AIMessage(f"{len(notes)} notes: {separator.join(notes)}")]}

    return take_note


def recap(state: State) -> dict[str, object]:
    return {"messages": [AIMessage("recap: " + state["messages"][-1].text)]}


async def make_graph(config: RunnableConfig) -> object:
    configurable = config.get("configurable", {})
    builder = StateGraph(State)
    builder.add_node("take_note", note_taker(configurable.get("separator", "; ")))
    builder.set_entry_point("take_note")
    if configurable.get("recap"):
        builder.add_node("recap", recap)
        builder.add_edge("take_note", "recap")
    return builder.compile()
