"""The pipeline researches, writes, reviews by rubric and revises until approved or at the revision limit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage

from graphs.pipeline import build_graph
from loom.settings import get_settings
from services.knowledge.index import get_index
from tests.fixtures.env import SetEnv
from tests.fixtures.models import ScriptedModels
from tests.graphs.team_scripts import GOAL, researcher_script, writer_script

JUDGE_FIELDS = ("answers_goal", "claims_supported", "clear_structure", "specific")
SNAPSHOT = Path(__file__).parent / "snapshots" / "pipeline.mmd"


def verdict(passing: int, explanation: str = "Tighten the argument.") -> dict[str, Any]:
    """A judge verdict that passes the first ``passing`` of its four criteria."""
    return {**{name: i < passing for i, name in enumerate(JUDGE_FIELDS)}, "explanation": explanation}


def team(scripted: type[ScriptedModels], judge: list[Any], drafts: int, made_up: str = "") -> ScriptedModels:
    return scripted(researcher=researcher_script(), writer=writer_script(drafts, made_up), judge=judge)


def ask() -> dict[str, Any]:
    return {"messages": [HumanMessage(GOAL)]}


def writer_briefs(models: ScriptedModels) -> list[str]:
    return [next(m.text for m in call if isinstance(m, HumanMessage)) for call in models.models["writer"].calls]


def test_topology_matches_snapshot() -> None:
    drawing = build_graph().get_graph().draw_mermaid()
    assert drawing == SNAPSHOT.read_text(), "graph topology changed: update the snapshot if intended"


async def test_approved_article_is_published_with_real_sources(scripted: type[ScriptedModels]) -> None:
    models = team(scripted, [verdict(4)], drafts=1)
    result = await build_graph(models).ainvoke(ask())
    [review] = result["reviews"]
    assert review["criteria"] == dict.fromkeys(review["criteria"], True) and len(review["criteria"]) == 7
    assert (result["finish_reason"], review["score"]) == ("approved", 1.0)
    assert result["article"].startswith("# The impact of async programming (v1)")
    assert len(result["sources"]) == 3
    index = await asyncio.to_thread(get_index)  # scans the documents folder: off the event loop
    for source in result["sources"]:
        passage = index.passage(source["cite"])
        assert passage is not None and passage.text == source["text"] and source["cite"] in result["article"]
    message = result["messages"][-1].content
    assert message.startswith(result["article"]) and "## Sources" in message


async def test_steps_run_in_fixed_order_with_workers_namespaced(scripted: type[ScriptedModels]) -> None:
    models = team(scripted, [verdict(1), verdict(2), verdict(0)], drafts=3)
    steps: list[str] = []
    namespaces: list[str] = []
    async for namespace, update in build_graph(models).astream(ask(), stream_mode="updates", subgraphs=True):
        if namespace:
            namespaces.append(namespace[0].split(":")[0])
        else:
            steps += list(update)
    assert steps == ["intake", "research", "write", "review", "revise", "review", "revise", "review", "publish"]
    assert list(dict.fromkeys(namespaces)) == ["research", "write", "revise"]


async def test_revision_limit_keeps_best_draft_and_says_why(scripted: type[ScriptedModels]) -> None:
    models = team(scripted, [verdict(1), verdict(2), verdict(0)], drafts=3)
    result = await build_graph(models).ainvoke(ask())
    assert [r["revision"] for r in result["reviews"]] == [0, 1, 2]
    assert [r["score"] for r in result["reviews"]] == [round(4 / 7, 4), round(5 / 7, 4), round(3 / 7, 4)]
    assert result["finish_reason"] == "revision_limit"
    assert result["article"].startswith("# The impact of async programming (v2)")  # the best, not the last
    assert "revision 1" in result["finish_detail"]
    revise_brief = writer_briefs(models)[1]
    assert "Your previous draft:\n# The impact of async programming (v1)" in revise_brief
    assert "clear_structure" not in revise_brief and "a title, an introduction" in revise_brief


async def test_made_up_citation_is_never_outvoted_by_the_judge(scripted: type[ScriptedModels]) -> None:
    models = team(scripted, [verdict(4), verdict(4)], drafts=2, made_up="[nowhere.md#7]")
    result = await build_graph(models).ainvoke(ask())
    first, second = result["reviews"]
    assert first["criteria"]["citations_resolve"] is False and first["score"] >= get_settings().review_threshold
    assert "[nowhere.md#7]" in writer_briefs(models)[1]
    assert second["score"] == 1.0 and result["finish_reason"] == "approved"
    assert "[nowhere.md#7]" not in result["article"]


async def test_judge_without_a_verdict_counts_as_failing(scripted: type[ScriptedModels], set_env: SetEnv) -> None:
    set_env(LOOM_MAX_REVISIONS="0")
    result = await build_graph(team(scripted, ["I think it is fine"], drafts=1)).ainvoke(ask())
    [review] = result["reviews"]
    assert review["judged"] is False and review["score"] == round(3 / 7, 4)
    assert result["finish_reason"] == "revision_limit" and result["article"].startswith("# The impact")
