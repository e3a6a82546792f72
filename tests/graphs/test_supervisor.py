"""The supervisor delegates to worker subgraphs, passes the article through verbatim, and always ends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from graphs.supervisor import build_graph
from loom.settings import get_settings
from nodes.models.fake import tool_call
from services.knowledge.index import get_index
from tests.fixtures.env import SetEnv
from tests.fixtures.models import ScriptedModels
from tests.graphs.team_scripts import GOAL, researcher_script, writer_script

SNAPSHOT = Path(__file__).parent / "snapshots" / "supervisor.mmd"


def ask(text: str = GOAL) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def config(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def delegated(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["worker"], r["instruction"]) for r in result["reports"]]


def happy_team(scripted: type[ScriptedModels]) -> ScriptedModels:
    return scripted(
        supervisor=[
            {"next": "researcher", "task": "Find passages on how async programming affects services"},
            {"next": "writer", "task": "Write the article with citations"},
            {"next": "reviewer", "task": "Check the draft"},
            {"next": "finish", "pass_through": "writer"},
        ],
        researcher=researcher_script(),
        writer=writer_script(),
        reviewer=[tool_call("check_draft"), "APPROVED: every citation resolves."],
    )


def test_topology_matches_snapshot() -> None:
    drawing = build_graph().get_graph(xray=1).draw_mermaid()
    assert drawing == SNAPSHOT.read_text(), "graph topology changed: update the snapshot if intended"


async def test_team_writes_a_cited_article_and_passes_it_through_verbatim(
    scripted: type[ScriptedModels], checkpointer: BaseCheckpointSaver[str]
) -> None:
    result = await build_graph(happy_team(scripted), checkpointer=checkpointer).ainvoke(ask(), config())
    assert [w for w, _ in delegated(result)] == ["researcher", "writer", "reviewer"]
    article = next(r["output"] for r in result["reports"] if r["worker"] == "writer")
    assert (result["finish_reason"], result["final_from"]) == ("completed", "writer")
    assert result["final_output"] == article == result["messages"][-1].content
    assert len(result["sources"]) == 3
    index = await asyncio.to_thread(get_index)  # scans the documents folder: off the event loop
    for source in result["sources"]:
        passage = index.passage(source["cite"])
        assert passage is not None and passage.text == source["text"] and source["cite"] in article
    assert any(s["file"] == "async_programming_in_python.md" for s in result["sources"])


async def test_workers_stream_namespaced_and_report_sources(scripted: type[ScriptedModels]) -> None:
    graph = build_graph(happy_team(scripted))
    namespaces: set[str] = set()
    custom: list[tuple[str, dict[str, Any]]] = []
    async for namespace, mode, chunk in graph.astream(ask(), stream_mode=["updates", "custom"], subgraphs=True):
        if namespace:
            namespaces.add(namespace[0].split(":")[0])
        if mode == "custom":
            custom.append((namespace[0].split(":")[0] if namespace else "", chunk))
    assert namespaces == {"researcher", "writer", "reviewer"}
    reports = [(ns, event["worker"], event["sources"]) for ns, event in custom if event["event"] == "worker_report"]
    assert [(ns, worker) for ns, worker, _ in reports] == [(w, w) for w in ("researcher", "writer", "reviewer")]
    assert reports[0][2] == get_settings().knowledge_top_k  # the researcher's retrieved passages
    decisions = [event["next"] for ns, event in custom if event["event"] == "supervisor_decision"]
    assert decisions == ["researcher", "writer", "reviewer"]


async def test_reviewer_checks_the_real_draft(scripted: type[ScriptedModels]) -> None:
    models = happy_team(scripted)
    await build_graph(models).ainvoke(ask())
    reviewer_prompts = models.models["reviewer"].calls
    tool_result = reviewer_prompts[-1][-1]
    assert tool_result.type == "tool" and '"unresolved_citations": []' in tool_result.text
    assert tool_result.text.count('"cite"') == 3


async def test_a_supervisor_repeating_itself_is_stopped_by_loop_detection(scripted: type[ScriptedModels]) -> None:
    models = scripted(supervisor=[{"next": "researcher", "task": "Find sources"}] * 10)
    result = await build_graph(models).ainvoke(ask())
    assert result["finish_reason"] == "loop_detected"
    assert [w for w, _ in delegated(result)] == ["researcher", "writer", "researcher"]
    assert len(result["loop_events"]) == 2
    assert "same task twice" in result["loop_events"][0] and "changed nothing" in result["loop_events"][1]
    assert result["final_from"] == "writer"  # finishes with the best work that exists
    assert models.models["supervisor"].remaining == 7


async def test_repeats_that_keep_changing_output_are_still_caught(scripted: type[ScriptedModels]) -> None:
    models = scripted(
        supervisor=[{"next": "writer", "task": "Polish the article"}] * 10,
        writer=[f"Draft number {n}" for n in range(1, 10)],
    )
    result = await build_graph(models).ainvoke(ask())
    assert result["finish_reason"] == "loop_detected"
    assert [w for w, _ in delegated(result)] == ["writer", "researcher", "writer"]
    assert len(result["loop_events"]) == 2
    assert all("same task twice" in event for event in result["loop_events"])
    assert result["final_output"] == "Draft number 2"


async def test_round_limit_finishes_with_the_best_draft(scripted: type[ScriptedModels], set_env: SetEnv) -> None:
    set_env(LOOM_SUPERVISOR_MAX_ROUNDS="3")
    models = scripted(
        supervisor=[{"next": w, "task": f"Step {n}"} for n, w in enumerate(["writer", "researcher", "writer"] * 3)],
        writer=["First draft", "Second draft"],
    )
    result = await build_graph(models).ainvoke(ask())
    assert result["finish_reason"] == "round_limit"
    assert len(result["reports"]) == 3
    assert (result["final_output"], result["final_from"]) == ("Second draft", "writer")


async def test_invalid_decisions_fall_back_to_research_write_review(
    scripted: type[ScriptedModels], set_env: SetEnv
) -> None:
    set_env(LOOM_SUPERVISOR_MAX_ROUNDS="4")
    models = scripted(supervisor=["not json"] * 4, writer=["Draft A", "Draft B"])
    graph = build_graph(models)
    result = await graph.ainvoke(ask())
    assert [w for w, _ in delegated(result)] == ["researcher", "writer", "reviewer", "writer"]
    assert result["finish_reason"] == "round_limit" and result["final_output"] == "Draft B"


async def test_finish_with_own_answer_and_usage_is_recorded(
    scripted: type[ScriptedModels], checkpointer: BaseCheckpointSaver[str]
) -> None:
    models = scripted(supervisor=[{"next": "finish", "final_output": "Nothing to research."}] * 2)
    graph = build_graph(models, checkpointer=checkpointer)
    first = await graph.ainvoke(ask("hello"), config())
    assert (first["final_output"], first["final_from"], first["finish_reason"]) == (
        "Nothing to research.",
        "supervisor",
        "completed",
    )
    state = (await graph.aget_state(config())).values
    assert [u["node"] for u in state["usage"]] == ["supervisor"]
    second = await graph.ainvoke(ask("hello again"), config())  # a new turn starts a fresh round count
    assert second["finish_reason"] == "completed" and len(second["messages"]) == 4
    assert (await graph.aget_state(config())).values["rounds"] == 0
