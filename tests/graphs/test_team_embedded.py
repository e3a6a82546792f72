"""Smoke runs of the supervisor and pipeline graphs on the real embedded model (SmolLM2-135M), offline.

A 135M model writes poor articles; what must hold anyway is structural: every decision and verdict is
valid (constrained decoding), the researcher retrieves real passages, and both graphs end with a reason.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import HumanMessage

from graphs import pipeline, supervisor
from nodes.team.pipeline import JUDGE_CRITERIA
from services.knowledge.index import get_index
from tests.fixtures.env import SetEnv
from tests.graphs.team_scripts import GOAL

pytestmark = pytest.mark.embedded_model


@pytest.fixture(autouse=True)
def embedded_model(set_env: SetEnv) -> None:
    set_env(
        LOOM_MODEL="local:smollm2", LOOM_MODEL_MAX_TOKENS="160", LOOM_SUPERVISOR_MAX_ROUNDS="2", LOOM_MAX_REVISIONS="0"
    )


async def test_supervisor_ends_with_a_reason_on_the_embedded_model() -> None:
    result = await supervisor.build_graph().ainvoke({"messages": [HumanMessage(GOAL)]})
    assert result["finish_reason"] in {"completed", "round_limit", "loop_detected"}
    assert result["messages"][-1].type == "ai" and result["messages"][-1].content == result["final_output"]
    assert len(result["reports"]) <= 2
    for source in [s for r in result["reports"] for s in r["sources"]] + result["sources"]:
        assert (await asyncio.to_thread(get_index)).passage(source["cite"]) is not None


async def test_pipeline_reviews_by_rubric_on_the_embedded_model() -> None:
    result = await pipeline.build_graph().ainvoke({"messages": [HumanMessage(GOAL)]})
    assert result["finish_reason"] in {"approved", "revision_limit"}
    assert len(result["reviews"]) == 1
    for review in result["reviews"]:  # a verdict, or a counted failure the reviser is told about (never silence)
        assert set(review["criteria"]) >= set(JUDGE_CRITERIA)
        assert review["judged"] or "could not give a verdict" in review["feedback"]
    assert result["article"].strip() and result["messages"][-1].content.startswith(result["article"])
