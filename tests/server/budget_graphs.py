"""A three-step graph on the configured provider model, written as a served project would write it.

Each node counts its executions in a file under the data dir (``<thread>.<node>``), so a test can
prove that a run stopped by its budget and resumed with a larger one ran no node twice.
"""

from __future__ import annotations

import asyncio
import operator
from dataclasses import dataclass
from typing import Annotated, Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Checkpointer
from typing_extensions import TypedDict

from loom.settings import get_settings
from nodes.models import model_for, settings_models


class PricedState(TypedDict):
    topic: str
    log: Annotated[list[str], operator.add]


@dataclass
class PricedContext:
    """A context schema of the project's own: Loom keeps ``budget`` out of it."""

    audience: str = "everyone"


def _count(thread_id: str, node: str) -> None:
    folder = get_settings().data_dir / "counts"
    folder.mkdir(parents=True, exist_ok=True)
    counter = folder / f"{thread_id}.{node}"
    counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))


def step(node: str) -> Any:
    async def run(state: PricedState, config: RunnableConfig) -> dict[str, Any]:
        await asyncio.to_thread(_count, str(config["configurable"]["thread_id"]), node)
        model = await model_for(settings_models, node)
        reply = await model.ainvoke([HumanMessage(f"{node} a short note on {state['topic']}")], config)
        return {"log": [f"{node}: {reply.text}"]}

    return run


def build_priced(checkpointer: Checkpointer = None) -> Any:
    builder = StateGraph(PricedState, context_schema=PricedContext)
    for node in ("draft", "review", "publish"):
        builder.add_node(node, step(node))
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder.compile(checkpointer=checkpointer, name="priced")
