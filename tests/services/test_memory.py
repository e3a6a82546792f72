"""The memory service: the keyword stage that recognises memory requests, and recall's ranking and budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from langgraph.store.memory import InMemoryStore

from services.memory import NAMESPACE, MemoryRequest, estimate_tokens, parse_request, recall

R, F = "remember", "forget"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Remember that my favourite colour is teal.", MemoryRequest(R, "my favourite colour is teal", "preference")),
        ("please remember: my team is called Falcon", MemoryRequest(R, "my team is called Falcon", "fact")),
        ("Remember that I prefer Python examples", MemoryRequest(R, "I prefer Python examples", "preference")),
        ("remember to always answer in French", MemoryRequest(R, "to always answer in French", "fact")),
        ("From now on, answer in French!", MemoryRequest(R, "answer in French", "instruction")),
        ("Forget that my team is called Falcon", MemoryRequest(F, "my team is called Falcon")),
        ("forget everything", MemoryRequest(F, "everything")),
        ("Write a blog post I will remember", None),
        ("Can you remember what we discussed?", None),
    ],
)
def test_memory_requests_are_recognised_by_keywords(message: str, expected: MemoryRequest | None) -> None:
    assert parse_request(message) == expected


def memory(text: str, days_ago: float = 0.0, uses: int = 0) -> dict[str, object]:
    when = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    return {"text": text, "kind": "fact", "source_thread": "t", "created_at": when, "last_used_at": None, "uses": uses}


async def test_recall_ranks_by_similarity_then_recency_and_use_within_the_budget() -> None:
    store = InMemoryStore()
    await store.aput(NAMESPACE, "colour", memory("my favourite colour is teal", days_ago=90))
    await store.aput(NAMESPACE, "team", memory("my team is called Falcon", days_ago=90))
    await store.aput(NAMESPACE, "fresh", memory("I live in Lisbon", days_ago=0, uses=20))
    await store.aput(NAMESPACE, "note", {"title": "not a memory"})

    recalled, ranking = await recall(store, "what colour suits my room?", budget_tokens=100)
    assert ranking == "bm25" and [m["key"] for m in recalled] == ["colour", "fresh", "team"]
    assert recalled[0]["score"] > 1.0 > recalled[1]["score"] > recalled[2]["score"]

    tight = estimate_tokens("my favourite colour is teal") + 1
    assert [m["key"] for m in (await recall(store, "colour", tight))[0]] == ["colour"]
    assert (await store.aget(NAMESPACE, "colour")).value["uses"] == 2  # type: ignore[union-attr]
