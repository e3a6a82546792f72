"""The memory pre-step of the chat graphs: capture an explicit memory request, else recall for the run.

``memory`` runs first in each run. "Remember that …", "from now on …" and "forget …" are settled here,
without a model call, and acknowledged (the turn ends); any other request gets the user's best memories
in ``state["memories"]``, which :func:`memory_prompt` turns into lines of the answering nodes' system prompt.
Memory is on unless the settings (``LOOM_MEMORY``) or the run (``config.configurable.memory = false``,
per assistant or per request) turn it off, and needs a store (``runtime.store``, per user on the server).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from loom.settings import get_settings
from loom.threads import public_thread_id
from nodes.common.routing import last_human_text
from services.memory import MemoryRequest, forget, parse_request, recall, remember
from state.common import RecalledMemory, RunContext

KIND_LABELS = {"fact": "fact", "preference": "preference", "instruction": "standing instruction"}


def memory_store(config: RunnableConfig, runtime: Runtime[RunContext]) -> BaseStore | None:
    """The caller's store when memory is on for this run, else None."""
    wanted = (config.get("configurable") or {}).get("memory", True)
    if not get_settings().memory or wanted in (False, "false", "off", 0):
        return None
    return runtime.store


def make_memory_step() -> Any:
    """The ``memory`` node (typed loosely, like ``make_agent``'s, so any chat graph's state fits)."""
    return memory


async def memory(state: dict[str, Any], config: RunnableConfig, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Captures an explicit memory request (acknowledged, no model call), else recalls memories for the run."""
    store = memory_store(config, runtime)
    if store is None:
        return {"memories": []}
    text = last_human_text(state["messages"])
    if request := parse_request(text):
        reply = await _capture(store, request, config)
        get_stream_writer()({"event": "memory", "action": request.action, "text": request.text})
        return {"messages": [AIMessage(content=reply)], "memories": []}
    recalled, ranking = await recall(store, text, get_settings().memory_recall_tokens)
    if recalled:
        get_stream_writer()(
            {"event": "memory", "action": "recall", "ranking": ranking, "keys": [m["key"] for m in recalled]}
        )
    return {"memories": recalled}


def after_memory(state: dict[str, Any]) -> Literal["continue", "__end__"]:
    """A captured request was answered by the memory step itself; anything else goes on to the graph."""
    return "__end__" if isinstance(state["messages"][-1], AIMessage) else "continue"


def memory_prompt(memories: Sequence[RecalledMemory], user_name: str) -> str:
    """System-prompt lines for recalled memories; empty when there are none."""
    if not memories:
        return ""
    lines = [f"- ({KIND_LABELS[m['kind']]}) {m['text']}" for m in memories]
    header = f"What {user_name} asked you to remember in earlier conversations (their words; 'I'/'my' is them):"
    return "\n".join([header, *lines])


async def _capture(store: BaseStore, request: MemoryRequest, config: RunnableConfig) -> str:
    if request.action == "forget":
        gone = await forget(store, request.text)
        if not gone:
            return f"I had nothing remembered about “{request.text}”."
        return "Forgotten: " + "; ".join(f"“{text}”" for text in gone) + "."
    thread = (config.get("configurable") or {}).get("thread_id")
    await remember(store, request, public_thread_id(str(thread)) if thread else None)
    return f"I'll remember that ({KIND_LABELS[request.kind]}): “{request.text}”."
