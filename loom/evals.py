"""Routing evaluation: how often the assistant sends a request to the right specialist."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from langchain_core.messages import HumanMessage
from rich.console import Console
from rich.table import Table

from loom.settings import get_settings
from nodes.assistant.router import ROUTER_INSTRUCTIONS, route_by_keywords
from nodes.common.routing import choose_label
from nodes.models import settings_models
from state.assistant import SPECIALISTS


async def evaluate_routing(data: str, limit: int, console: Console) -> dict[str, float]:
    """Score stage one alone, the model alone, and both together (what the graph does)."""
    rows = [json.loads(line) for line in Path(data).read_text().splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    settings = get_settings()
    model_spec = settings.model_for("router")
    model = settings_models("router")
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    for row in rows:
        expected = row["specialist"]
        keyword_route = route_by_keywords(row["text"], settings.router_confidence)
        choice, _error, _usage = await choose_label(
            model, ROUTER_INSTRUCTIONS, [HumanMessage(row["text"])], SPECIALISTS, node="router", config={}
        )
        model_label = choice.label if choice else "content_writer"
        counts["model_correct"] += model_label == expected
        if keyword_route:
            counts["keyword_decided"] += 1
            counts["keyword_correct"] += keyword_route["specialist"] == expected
        final = keyword_route["specialist"] if keyword_route else model_label
        counts["end_to_end_correct"] += final == expected
    total = len(rows)
    results = {
        "requests": total,
        "stage_one_coverage": counts["keyword_decided"] / total,
        "stage_one_accuracy": counts["keyword_correct"] / max(counts["keyword_decided"], 1),
        "model_alone_accuracy": counts["model_correct"] / total,
        "end_to_end_accuracy": counts["end_to_end_correct"] / total,
        "seconds": round(time.perf_counter() - started, 1),
    }
    table = Table("metric", "value", title=f"routing on {data} with {model_spec}")
    for key, value in results.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) and key != "seconds" else str(value))
    console.print(table)
    return results
