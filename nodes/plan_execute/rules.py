"""The deterministic first stage of planning, as ``nodes.common.dispatch`` is for tool calls.

A plain catalogue question ("find round sunglasses that are in stock and tell me their prices")
always gets the same plan, built from the words of the request and the shop's own categories and
styles: no model call, and the right plan even on the 135M embedded model. Anything less plain
(returns, comparisons, code, open questions) goes to the planner LLM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from state.plan_execute import PlanStep

_IN_STOCK = re.compile(r"\b(in[ -]stock|available|availability|stocked|on hand)\b", re.IGNORECASE)
_PRICE = re.compile(r"\b(prices?|cost|costs|how much|priced)\b", re.IGNORECASE)
_LOOKUP = re.compile(r"\b(find|show|list|which|what|any|do you have|look for|search)\b", re.IGNORECASE)
_NOT_PLAIN = re.compile(r"\b(return|refund|order|compare|cheapest|average|chart|code|python|why)\b", re.IGNORECASE)


def _mentions(text: str, word: str) -> bool:
    singular = (
        word[:-2] if word.endswith("ches") else word[:-1] if word.endswith("s") and word != "sunglasses" else word
    )
    return re.search(rf"\b({re.escape(word)}|{re.escape(singular)})\b", text, re.IGNORECASE) is not None


def shop_plan(text: str, categories: Sequence[str], styles: Sequence[str]) -> list[PlanStep] | None:
    """describe → (check stock) → (get prices), chained by ``$ref``; None when the request is not plain."""
    category = next((c for c in categories if _mentions(text, c)), None)
    if category is None or _NOT_PLAIN.search(text) or not _LOOKUP.search(text):
        return None
    words = [s for s in styles if re.search(rf"\b{re.escape(s)}\b", text, re.IGNORECASE)]
    label = " ".join([*words, category])
    steps = [
        PlanStep(
            id="step_1",
            description=f"Find {label}",
            tool="get_item_descriptions",
            arguments={"category": category, "filter": " ".join(words)},
        )
    ]
    source = "step_1.item_ids"
    if _IN_STOCK.search(text):
        steps.append(_step(2, f"Check which {label} are in stock", "check_inventory", source))
        source = "step_2.in_stock_ids"
    if _PRICE.search(text):
        steps.append(_step(len(steps) + 1, f"Get prices of those {label}", "get_item_price", source))
    return steps


def _step(number: int, description: str, tool: str, source: str) -> PlanStep:
    previous = source.split(".", 1)[0]
    return PlanStep(
        id=f"step_{number}",
        description=description,
        tool=tool,
        arguments={"item_ids": {"$ref": source}},
        depends_on=[previous],
    )
