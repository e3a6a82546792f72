"""The worker subgraphs' own nodes: turn the shared board into a brief, and the answer into a report.

A worker never sees another worker's tool calls, only their final reports and the passages they
retrieved, so each agent's prompt stays short enough for a small local model.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.config import get_stream_writer

from services.knowledge.index import KnowledgeIndex, get_index, resolve_citations
from state.team import Source, Worker, WorkerInput, WorkerReport, WorkerState

SOURCES_IN_BRIEF = 6
SOURCE_CHARS = 420

DEFAULT_INSTRUCTIONS: dict[Worker, str] = {
    "researcher": "Find the passages that best support an answer to the goal and summarise what they say.",
    "writer": "Write the piece the goal asks for from the research, citing passages by their markers.",
    "reviewer": "Review the draft: check its citations and whether it answers the goal, and list concrete fixes.",
}


def latest(reports: list[WorkerReport], worker: Worker) -> WorkerReport | None:
    return next((report for report in reversed(reports) if report["worker"] == worker), None)


def gathered_sources(reports: list[WorkerReport]) -> list[Source]:
    """Every passage any worker retrieved, best score first, each cite once."""
    by_cite: dict[str, Source] = {}
    for report in reports:
        for source in report["sources"]:
            if source["cite"] not in by_cite or source["score"] > by_cite[source["cite"]]["score"]:
                by_cite[source["cite"]] = source
    return sorted(by_cite.values(), key=lambda s: -s["score"])


def pending_feedback(state: WorkerInput) -> str:
    """Review findings the latest draft has not answered yet: explicit feedback, else a newer review."""
    if state.get("feedback"):
        return state["feedback"]
    reports = state.get("reports", [])
    review, draft = latest(reports, "reviewer"), latest(reports, "writer")
    if review and draft and reports.index(review) > reports.index(draft):
        return review["output"]
    return ""


def format_sources(sources: list[Source]) -> str:
    """One line per passage: marker, heading, then the start of its text on the same line."""
    return "\n".join(
        f"{s['cite']} {s['heading']} — {' '.join(s['text'].split())[:SOURCE_CHARS]}" for s in sources[:SOURCES_IN_BRIEF]
    )


def brief_text(worker: Worker, state: WorkerInput) -> str:
    reports = state.get("reports", [])
    notes, draft = latest(reports, "researcher"), latest(reports, "writer")
    sources = gathered_sources(reports)
    parts = [f"Goal: {state['goal']}", f"Your task: {state.get('instruction') or DEFAULT_INSTRUCTIONS[worker]}"]
    if worker != "researcher" and notes:
        parts.append(f"Research notes:\n{notes['output']}")
    if worker != "researcher" and sources:
        parts.append(
            f"Passages you may cite (put the marker right after the claim it supports):\n{format_sources(sources)}"
        )
    feedback = pending_feedback(state)
    if worker == "writer" and draft and feedback:
        parts += [f"Your previous draft:\n{draft['output']}", f"Reviewer feedback to address:\n{feedback}"]
    if worker == "reviewer" and draft:
        parts.append(f"Draft to review:\n{draft['output']}")
    return "\n\n".join(parts)


def make_brief(worker: Worker) -> Any:
    def brief(state: WorkerState) -> dict[str, Any]:
        return {"messages": [HumanMessage(content=brief_text(worker, state))]}

    brief.__name__ = f"{worker}_brief"
    return brief


def retrieved_sources(messages: list[AnyMessage]) -> list[Source]:
    """The passages this worker's search tools returned (their artifacts), each cite once."""
    found: dict[str, Source] = {}
    for message in messages:
        if isinstance(message, ToolMessage) and isinstance(message.artifact, list):
            for item in message.artifact:
                if isinstance(item, dict) and "cite" in item:
                    found.setdefault(item["cite"], item)  # type: ignore[arg-type]
    return list(found.values())


def make_report(worker: Worker) -> Any:
    def report(state: WorkerState) -> dict[str, Any]:
        last = state["messages"][-1]
        output = last.text if isinstance(last, AIMessage) else ""
        record = WorkerReport(
            id=uuid.uuid4().hex,
            worker=worker,
            instruction=state.get("instruction") or DEFAULT_INSTRUCTIONS[worker],
            output=output,
            sources=retrieved_sources(state["messages"]),
        )
        get_stream_writer()(
            {"event": "worker_report", "worker": worker, "chars": len(output), "sources": len(record["sources"])}
        )
        return {"reports": [record]}

    report.__name__ = f"{worker}_report"
    return report


def cited_sources(
    text: str, reports: list[WorkerReport], index: KnowledgeIndex | None = None
) -> tuple[list[Source], list[str]]:
    """(sources the text cites, markers that match nothing): web cites resolve against what was retrieved."""
    found, missing = resolve_citations(text, index or get_index())
    retrieved = {s["cite"]: s for s in gathered_sources(reports)}
    for marker in list(missing):
        if marker in retrieved:
            missing.remove(marker)
            found.append(retrieved[marker])
    for cite, source in retrieved.items():
        if source["origin"] == "web" and cite in text and source not in found:
            found.append(source)
    return found, missing
