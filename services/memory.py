"""Long-term memory: what a user asked Loom to remember, kept in their store under ``("memories",)``.

An item's value is a :class:`Memory`. The caller's store is per user (the server scopes ``runtime.store``
as ``client.store``), so ``client.store.search_items(["memories"])`` lists exactly what the agent recalls,
and deleting an item there makes it forget. Explicit requests ("remember that …", "from now on …",
"forget …") are recognised by patterns, never by a model call. Recall ranks by similarity to the request
(the store's semantic index when it has one, else BM25 over the memories' words), boosted for recent and
often-used memories (seed 003), and keeps what fits a token budget.
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from langgraph.store.base import BaseStore, SearchItem
from typing_extensions import TypedDict

from services.knowledge.index import LuceneBM25, tokens
from state.common import MemoryKind, RecalledMemory

NAMESPACE = ("memories",)
Ranking = Literal["semantic", "bm25"]

RECALL_LIMIT = 8
"""Memories considered for one prompt, before the token budget."""
SCAN_LIMIT = 500
"""Memories read for BM25 ranking (a user's whole memory, in practice)."""
RECENCY_WEIGHT = 0.2
USE_WEIGHT = 0.1
RECENCY_HALF_LIFE_DAYS = 30.0


class Memory(TypedDict):
    """One remembered item, as stored (and as ``client.store`` shows it)."""

    text: str
    kind: MemoryKind
    source_thread: str | None
    created_at: str
    last_used_at: str | None
    uses: int


@dataclass(frozen=True)
class MemoryRequest:
    """What an explicit memory request asks: to remember ``text`` (of ``kind``) or to forget what matches it."""

    action: Literal["remember", "forget"]
    text: str
    kind: MemoryKind = "fact"


_REMEMBER = re.compile(r"^\s*(?:please\s+)?(?:remember|note|keep in mind)\s*(?:that\b|:)?\s*(?P<text>.+)", re.I | re.S)
_FROM_NOW_ON = re.compile(r"^\s*(?:please\s+)?from now on\b[\s,:]*(?P<text>.+)", re.I | re.S)
_FORGET = re.compile(r"^\s*(?:please\s+)?forget\s+(?:that\b|about\b|:)?\s*(?P<text>.+)", re.I | re.S)
_PREFERENCE = re.compile(r"\b(i|we) (prefer|like|love|hate|dislike|enjoy|want)\b|\bfavou?rite\b|\brather\b", re.I)
_INSTRUCTION = re.compile(r"^(always|never|don'?t|do not|use|answer|reply|call me|write|keep)\b", re.I)
_FIRST_PERSON = frozenset({"me", "my", "mine", "myself"})
_EVERYTHING = re.compile(r"^(everything|all|all of it|all memories|everything you (know|remember)\b.*)$", re.I)


def parse_request(message: str) -> MemoryRequest | None:
    """The memory request ``message`` makes, or None: the keyword stage, no model involved."""
    if found := _FROM_NOW_ON.match(message):
        return MemoryRequest("remember", _clean(found["text"]), "instruction")
    if found := _FORGET.match(message):
        return MemoryRequest("forget", _clean(found["text"]))
    if found := _REMEMBER.match(message):
        text = _clean(found["text"])
        return MemoryRequest("remember", text, kind_of(text))
    return None


def kind_of(text: str) -> MemoryKind:
    """Preference ("I prefer …", "my favourite …"), instruction ("always …", "use …"), else fact."""
    if _PREFERENCE.search(text):
        return "preference"
    return "instruction" if _INSTRUCTION.match(text) else "fact"


def _clean(text: str) -> str:
    return " ".join(text.split()).rstrip(".!")


def now() -> str:
    return datetime.now(UTC).isoformat()


async def remember(store: BaseStore, request: MemoryRequest, thread_id: str | None) -> str:
    """Stores the memory (the same text again refreshes it instead of adding a copy); returns its key."""
    existing = [item for item in await _all(store) if _value(item)["text"].lower() == request.text.lower()]
    key = existing[0].key if existing else uuid.uuid4().hex
    memory = Memory(
        text=request.text,
        kind=request.kind,
        source_thread=thread_id,
        created_at=_value(existing[0])["created_at"] if existing else now(),
        last_used_at=None,
        uses=_value(existing[0])["uses"] if existing else 0,
    )
    await store.aput(NAMESPACE, key, dict(memory))
    return key


async def forget(store: BaseStore, about: str) -> list[str]:
    """Deletes the memories ``about`` names (every word of it in the memory; "everything": all); their texts."""
    items = await _all(store)
    if not _EVERYTHING.match(about.strip()):
        wanted = set(words(about))
        items = [item for item in items if wanted and wanted <= set(words(_value(item)["text"]))]
    for item in items:
        await store.adelete(NAMESPACE, item.key)
    return [_value(item)["text"] for item in items]


async def recall(store: BaseStore, query: str, budget_tokens: int) -> tuple[list[RecalledMemory], Ranking]:
    """The best memories for ``query`` that fit ``budget_tokens``, each marked as used; and the ranking used."""
    semantic = getattr(store, "index_config", None) is not None
    items = await _all(store, query if semantic else None)
    similarity = _semantic(items) if semantic else await _bm25(query, items)
    moment = datetime.now(UTC)
    ranked = sorted(items, key=lambda item: similarity[item.key] + _boost(_value(item), moment), reverse=True)
    chosen: list[RecalledMemory] = []
    spent = 0
    for item in ranked[:RECALL_LIMIT]:
        memory = _value(item)
        cost = estimate_tokens(memory["text"])
        if spent + cost > budget_tokens:
            continue
        spent += cost
        score = round(float(similarity[item.key] + _boost(memory, moment)), 4)
        chosen.append(RecalledMemory(key=item.key, text=memory["text"], kind=memory["kind"], score=score))
        await store.aput(NAMESPACE, item.key, {**memory, "last_used_at": now(), "uses": memory["uses"] + 1})
    return chosen, "semantic" if semantic else "bm25"


def estimate_tokens(text: str) -> int:
    """About four characters a token, as tokenizers of English text average."""
    return len(text) // 4 + 1


def _boost(memory: Memory, moment: datetime) -> float:
    """Seed 003's recency and use boosts: a memory used yesterday and often outranks an equal stale one."""
    last = datetime.fromisoformat(memory["last_used_at"] or memory["created_at"])
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    age_days = max((moment - last).total_seconds(), 0.0) / 86_400
    recency = 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS)
    return RECENCY_WEIGHT * recency + USE_WEIGHT * math.log1p(memory["uses"]) / math.log1p(100)


def _semantic(items: Sequence[SearchItem]) -> dict[str, float]:
    return {item.key: item.score or 0.0 for item in items}


def words(text: str) -> list[str]:
    """The words that tell memories apart: the knowledge base's tokens less the first person, in every memory."""
    return [word for word in tokens(text) if word not in _FIRST_PERSON]


def bm25_scores(query: str, texts: Sequence[str]) -> list[float]:
    """BM25 scores of ``texts`` for ``query``, scaled to 0…1 by the best one (all 0 when nothing matches)."""
    wanted = words(query)
    if not texts or not wanted:
        return [0.0] * len(texts)
    scores = [float(score) for score in LuceneBM25([words(text) or ["_"] for text in texts]).get_scores(wanted)]
    best = max(max(scores), 1e-9)
    return [score / best for score in scores]


async def _bm25(query: str, items: Sequence[SearchItem]) -> dict[str, float]:
    """BM25 over the memories' words, off the event loop (tokenising 500 memories takes ≈37 ms)."""
    scores = await asyncio.to_thread(bm25_scores, query, [_value(item)["text"] for item in items])
    return {item.key: score for item, score in zip(items, scores, strict=True)}


async def _all(store: BaseStore, query: str | None = None) -> list[SearchItem]:
    """The user's memories; with ``query``, the store's semantic search ranks (and scores) them."""
    limit = RECALL_LIMIT * 4 if query else SCAN_LIMIT
    found = await store.asearch(NAMESPACE, query=query, limit=limit)
    return [item for item in found if _is_memory(item.value)]


def _is_memory(value: dict[str, object]) -> bool:
    """Items a user put there by hand count when they have a text; the rest is theirs, not recalled."""
    return isinstance(value.get("text"), str) and bool(value["text"])


def _value(item: SearchItem) -> Memory:
    """The stored value with defaults for fields a hand-written item may lack."""
    value = item.value
    kind = value.get("kind")
    return Memory(
        text=str(value["text"]),
        kind=cast(MemoryKind, kind) if kind in ("fact", "preference", "instruction") else "fact",
        source_thread=value.get("source_thread"),
        created_at=str(value.get("created_at") or item.created_at.isoformat()),
        last_used_at=value.get("last_used_at"),
        uses=int(value.get("uses") or 0),
    )


EPISODES = ("episodes",)
Outcome = Literal["success", "replanned", "failure"]
LESSON_LIMIT = 3


class Episode(TypedDict):
    """One past run, as stored under ``("episodes",)``: its goal, steps, outcome and, if it went wrong, a lesson."""

    goal: str
    steps: list[str]
    outcome: Outcome
    lesson: str | None
    source_thread: str | None
    created_at: str


async def record_episode(store: BaseStore, episode: Episode) -> str:
    """Stores ``episode`` under a new key; returns the key."""
    key = uuid.uuid4().hex
    await store.aput(EPISODES, key, dict(episode))
    return key


async def lessons_for(store: BaseStore, goal: str) -> list[str]:
    """The lessons of the past episodes most similar to ``goal`` (semantic index, else BM25 with a shared word)."""
    semantic = getattr(store, "index_config", None) is not None
    found = await store.asearch(EPISODES, query=goal if semantic else None, limit=SCAN_LIMIT)
    taught = [item for item in found if isinstance(item.value.get("lesson"), str) and item.value["lesson"]]
    if not taught:
        return []
    if semantic:
        return [str(item.value["lesson"]) for item in taught[:LESSON_LIMIT]]
    scores = await asyncio.to_thread(bm25_scores, goal, [str(item.value.get("goal", "")) for item in taught])
    ranked = sorted(zip(scores, taught, strict=True), key=lambda pair: pair[0], reverse=True)
    return list(dict.fromkeys(str(item.value["lesson"]) for score, item in ranked[:LESSON_LIMIT] if score > 0))
