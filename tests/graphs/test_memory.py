"""Long-term memory in the assistant graph, on the fake model and LangGraph's in-memory store.

Capture is a keyword stage (no model call); recall puts the user's best memories in ``state["memories"]`` and in
the answering specialist's system prompt. The per-user, through-the-server path is tests/server/test_memory_live.py.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.memory import InMemoryStore

from graphs.assistant import build_graph
from graphs.support import build_graph as build_support
from services.memory import NAMESPACE
from state.common import RunContext
from tests.fixtures.env import SetEnv
from tests.fixtures.models import ScriptedModels


async def ask(graph: Any, text: str, thread: str, **configurable: Any) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread, **configurable}}
    return await graph.ainvoke(  # type: ignore[no-any-return]
        {"messages": [HumanMessage(text)]}, config, context=RunContext(user_id="demo", user_name="Ada")
    )


def system_prompt(models: ScriptedModels, role: str) -> str:
    (call,) = models.models[role].calls
    assert isinstance(call[0], SystemMessage)
    return call[0].text


async def test_remember_is_captured_without_a_model_and_recalled_in_a_new_thread(
    checkpointer: BaseCheckpointSaver[str],
) -> None:
    store, models = InMemoryStore(), ScriptedModels()
    graph = build_graph(models, checkpointer, store)

    first = await ask(graph, "Remember that my favourite colour is teal.", "t1")
    assert first["usage"] == [] and models.models == {}, "capture made no model call"
    [item] = await store.asearch(NAMESPACE)
    second = await ask(graph, "Write a blog post about my favourite colour", "t2")

    assert isinstance(first["messages"][-1], AIMessage) and "my favourite colour is teal" in first["messages"][-1].text
    assert item.value["text"] == "my favourite colour is teal" and item.value["kind"] == "preference"
    assert item.value["source_thread"] == "t1" and item.value["uses"] == 0 and item.value["last_used_at"] is None
    state = (await graph.aget_state({"configurable": {"thread_id": "t2"}})).values
    assert [m["text"] for m in state["memories"]] == ["my favourite colour is teal"]
    prompt = system_prompt(models, "content_writer")
    assert "Ada asked you to remember" in prompt and "(preference) my favourite colour is teal" in prompt
    [used] = await store.asearch(NAMESPACE)
    assert used.value["uses"] == 1 and used.value["last_used_at"] is not None
    assert second["messages"][-1].text == "echo: Write a blog post about my favourite colour"


async def test_forget_and_from_now_on(checkpointer: BaseCheckpointSaver[str]) -> None:
    store = InMemoryStore()
    graph = build_graph(ScriptedModels(), checkpointer, store)
    await ask(graph, "remember: my team is called Falcon", "t1")
    await ask(graph, "From now on, use Python for code examples.", "t1")
    kinds = {item.value["text"]: item.value["kind"] for item in await store.asearch(NAMESPACE)}
    forgot = await ask(graph, "Forget about my team", "t1")
    missed = await ask(graph, "forget the weather", "t1")

    assert kinds == {"my team is called Falcon": "fact", "use Python for code examples": "instruction"}
    assert "my team is called Falcon" in forgot["messages"][-1].text
    assert "nothing remembered" in missed["messages"][-1].text
    assert [item.value["text"] for item in await store.asearch(NAMESPACE)] == ["use Python for code examples"]


async def test_memory_off_per_request_and_by_settings(checkpointer: BaseCheckpointSaver[str], set_env: SetEnv) -> None:
    store = InMemoryStore()
    await store.aput(NAMESPACE, "k", {"text": "my favourite colour is teal"})  # a hand-written item counts too
    models = ScriptedModels()
    graph = build_graph(models, checkpointer, store)

    off = await ask(graph, "Remember that I like jazz, and write a poem about it", "t1", memory=False)
    assert "teal" not in system_prompt(models, "content_writer") and off["memories"] == []
    set_env(LOOM_MEMORY="false")
    await ask(graph, "Remember that I like jazz", "t2")
    assert [item.key for item in await store.asearch(NAMESPACE)] == ["k"], "nothing captured while memory is off"


async def test_without_a_store_the_graph_runs_as_before(checkpointer: BaseCheckpointSaver[str]) -> None:
    result = await ask(build_graph(ScriptedModels(), checkpointer), "Remember that I like jazz", "t1")
    assert result["memories"] == [] and result["messages"][-1].text == "echo: Remember that I like jazz"


async def test_support_remembers_across_requests(checkpointer: BaseCheckpointSaver[str]) -> None:
    store, models = InMemoryStore(), ScriptedModels()
    graph = build_support(models, checkpointer, store)
    said = await ask(graph, "Please remember that I am on the Pro plan and my company is Falcon Ltd", "s1")
    assert "request" not in said and models.models == {}, "no support request opened, no model call"

    answer = await ask(graph, "What does my Pro plan include?", "s2")
    assert answer["request"]["current_agent"] == "billing"
    assert "(fact) I am on the Pro plan and my company is Falcon Ltd" in system_prompt(models, "billing")
