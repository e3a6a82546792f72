"""``check_draft``: a code-based check of the draft under review (seed 001: code evals before LLM judges).

Whether every citation points at a real passage, and how long the draft is, are facts a program
can establish exactly; the reviewer agent gets them from this tool instead of guessing.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime

from nodes.common.permissions import declare
from nodes.team.workers import cited_sources, latest
from state.common import RunContext


def draft_facts(text: str, reports: list[Any]) -> dict[str, Any]:
    found, missing = cited_sources(text, reports)
    return {
        "words": len(text.split()),
        "citations": [{"cite": s["cite"], "heading": s["heading"]} for s in found],
        "unresolved_citations": missing,
    }


@tool
def check_draft(runtime: ToolRuntime[RunContext, dict[str, Any]]) -> str:
    """Check the draft under review: its length, which citations point at real passages, which point at nothing."""
    reports = runtime.state.get("reports", [])
    draft = latest(reports, "writer")
    if draft is None:
        return json.dumps({"error": "there is no draft yet; the writer has not reported"})
    return json.dumps(draft_facts(draft["output"], reports), ensure_ascii=False)


declare(check_draft, "read")
