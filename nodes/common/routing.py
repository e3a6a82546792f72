"""Two-stage routing: cheap keyword scoring first, a constrained LLM choice for the rest.

Most requests say plainly what they want ("write a blog…", "search my calendar…"); scoring
weighted patterns settles those in microseconds and never misroutes because a 135M model
rambled. Only unclear requests pay for a model call, whose output is constrained to the labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, create_model

from nodes.models.outputs import ask_structured
from state.common import UsageRecord

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class KeywordScore:
    label: str
    confidence: float
    scores: dict[str, float]


class KeywordRouter:
    """Scores text against weighted regex patterns per label.

    Confidence is the top score's margin over the runner-up, damped when the top score itself is
    weak, so one stray keyword never counts as a clear request.
    """

    def __init__(self, rules: Mapping[str, Sequence[tuple[str, float]]], strong_score: float = 2.0):
        self._rules = {
            label: [(re.compile(rf"\b(?:{pattern})", re.IGNORECASE), weight) for pattern, weight in patterns]
            for label, patterns in rules.items()
        }
        self._strong_score = strong_score

    @property
    def labels(self) -> list[str]:
        return list(self._rules)

    def score(self, text: str) -> KeywordScore:
        scores = {
            label: sum(weight for pattern, weight in patterns if pattern.search(text))
            for label, patterns in self._rules.items()
        }
        ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
        (label, top), (_, second) = ranked[0], ranked[1] if len(ranked) > 1 else ("", 0.0)
        if top <= 0:
            return KeywordScore(label, 0.0, scores)
        margin = max(top - max(second, 0.0), 0.0) / top
        confidence = round(margin * min(1.0, top / self._strong_score), 3)
        return KeywordScore(label, confidence, scores)


class LabelChoice(BaseModel):
    label: str
    reason: str


def choice_schema(labels: Sequence[str]) -> type[BaseModel]:
    """A schema whose ``label`` is one of ``labels``, so constrained decoding cannot invent one."""
    return create_model(
        "RouteChoice",
        label=(Literal[tuple(labels)], Field(description="Where to send the request")),  # type: ignore[arg-type]
        reason=(str, Field(description="One short sentence", max_length=120)),  # bounds the JSON for small models
    )


async def choose_label(
    model: BaseChatModel,
    instructions: str,
    messages: Sequence[BaseMessage],
    labels: Sequence[str],
    *,
    node: str,
    config: RunnableConfig,
) -> tuple[LabelChoice | None, str, UsageRecord]:
    """Ask the model for one label; returns (choice or None, error text if unusable, usage)."""
    reply = await ask_structured(
        model, choice_schema(labels), [SystemMessage(content=instructions), *messages], node=node, config=config
    )
    parsed: Any = reply.value
    choice = None if parsed is None else LabelChoice(label=parsed.label, reason=parsed.reason)
    return choice, reply.error, reply.usage


async def choose_structured(
    model: BaseChatModel,
    instructions: str,
    messages: Sequence[BaseMessage],
    schema: type[M],
    *,
    node: str,
    config: RunnableConfig,
) -> tuple[M | None, str, UsageRecord]:
    """Like ``choose_label`` for any pydantic schema (its ``Literal`` fields constrain the decoding).

    Returns (parsed object or None, error text if unusable, usage), so callers record why they fell back.
    """
    reply = await ask_structured(
        model, schema, [SystemMessage(content=instructions), *messages], node=node, config=config
    )
    return reply.value, reply.error, reply.usage


def last_human_text(messages: Sequence[AnyMessage]) -> str:
    """The text a router decides on: the newest user message."""
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
