"""The explicit "remember that …" path end to end on the real embedded model (SmolLM2-135M), offline.

Capture and recall decide nothing the model must understand, so the test asserts on the stored item, the recalled
memory in state and the system prompt the model received (read by a LangChain callback), never on its prose.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.memory import InMemoryStore

from graphs.assistant import build_graph
from services.memory import NAMESPACE
from state.common import RunContext
from tests.fixtures.env import SetEnv

pytestmark = pytest.mark.embedded_model


class Prompts(AsyncCallbackHandler):
    """Keeps the messages of every chat model call of a run."""

    def __init__(self) -> None:
        self.seen: list[list[BaseMessage]] = []

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **_: Any
    ) -> None:
        self.seen += messages


async def test_remember_then_recall_on_the_embedded_model(
    set_env: SetEnv, checkpointer: BaseCheckpointSaver[str]
) -> None:
    set_env(LOOM_MODEL="local:smollm2", LOOM_MODEL_MAX_TOKENS="32")
    store, prompts = InMemoryStore(), Prompts()
    graph = build_graph(checkpointer=checkpointer, store=store)
    context = RunContext(user_id="demo", user_name="Ada")
    said = await graph.ainvoke(
        {"messages": [HumanMessage("Remember that my favourite colour is teal")]},
        {"configurable": {"thread_id": "t1"}, "callbacks": [prompts]},
        context=context,
    )
    assert prompts.seen == [], "captured without a model call"
    assert "my favourite colour is teal" in said["messages"][-1].text
    [item] = await store.asearch(NAMESPACE)
    assert item.value["text"] == "my favourite colour is teal"

    answer = await graph.ainvoke(
        {"messages": [HumanMessage("Write a short poem about my favourite colour")]},
        {"configurable": {"thread_id": "t2"}, "callbacks": [prompts]},
        context=context,
    )
    assert [m["text"] for m in answer["memories"]] == ["my favourite colour is teal"]
    (system, *_), *_ = prompts.seen
    assert "(preference) my favourite colour is teal" in system.text
    assert answer["messages"][-1].type == "ai" and answer["usage"][-1]["model"] == "local:smollm2"
