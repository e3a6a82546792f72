from __future__ import annotations

from collections import Counter
from pathlib import Path

from loom.datasets import load_dataset
from loom.settings import get_settings
from nodes.assistant.router import candidates, keyword_router, route_by_keywords, router_instructions
from nodes.common.routing import KeywordRouter
from state.assistant import SPECIALISTS

TUNING = Path(__file__).parents[2] / "evals" / "assistant" / "golden.jsonl"
"""The assistant's tuning set (evals/README.md): rules are written against it, never against the held-out part."""


def labelled() -> list[dict[str, str]]:
    examples = load_dataset(TUNING)
    return [{"text": str(e.inputs), "specialist": str((e.expected.state or {})["route.specialist"])} for e in examples]


def test_labelled_set_covers_every_specialist() -> None:
    rows = labelled()
    counts = Counter(row["specialist"] for row in rows)
    assert len(rows) >= 40 and set(counts) == set(SPECIALISTS) and min(counts.values()) >= 5


def test_first_stage_is_accurate_on_what_it_decides() -> None:
    """Stage one must be right when it decides, and decide most plain requests."""
    threshold = get_settings().router_confidence
    decided = wrong = 0
    for row in labelled():
        route = route_by_keywords(row["text"], threshold)
        if route:
            decided += 1
            wrong += route["specialist"] != row["specialist"]
    assert decided / len(labelled()) >= 0.95
    assert wrong / decided <= 0.03


def test_confidence_needs_a_clear_margin() -> None:
    router = KeywordRouter({"a": [("apple", 2.0)], "b": [("banana", 2.0)]})
    assert router.score("apple pie").confidence == 1.0
    assert router.score("apple and banana").confidence == 0.0  # a tie decides nothing
    assert router.score("nothing relevant").confidence == 0.0
    weak = KeywordRouter({"a": [("apple", 1.0)], "b": [("banana", 1.0)]}, strong_score=2.0)
    assert weak.score("apple").confidence == 0.5  # one weak keyword is not enough


def test_ambiguous_requests_are_left_to_the_model() -> None:
    for text in ("Help me with my thing", "Draw a bar chart and write a poem about it in Python"):
        assert route_by_keywords(text, get_settings().router_confidence) is None, keyword_router.score(text)


def test_the_model_chooses_among_the_specialists_the_keywords_point_to() -> None:
    assert candidates("Help me with my thing") == list(SPECIALISTS)  # no clue: every specialist
    assert candidates("Analyse the data in this Python script") == ["coder", "document_analyst"]
    assert "workspace_agent" not in router_instructions(candidates("Analyse the data in this Python script"))
