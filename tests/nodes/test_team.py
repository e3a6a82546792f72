"""Worker briefs, report merging and the supervisor's deterministic guards."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from nodes.team.pipeline import best_review, code_criteria
from nodes.team.supervisor import best_available, next_useful_worker, normalize_task, progress_fingerprint
from nodes.team.workers import brief_text, cited_sources, gathered_sources, retrieved_sources
from services.knowledge.index import get_index
from state.pipeline import Review
from state.team import Source, Worker, WorkerInput, WorkerReport, merge_reports


def report(worker: Worker, output: str, sources: list[Source] | None = None, rid: str = "") -> WorkerReport:
    return WorkerReport(
        id=rid or f"{worker}-{output}", worker=worker, instruction="", output=output, sources=sources or []
    )


def board(*reports: WorkerReport, feedback: str = "") -> WorkerInput:
    return WorkerInput(goal="Explain backpressure", reports=list(reports), feedback=feedback)


def test_merge_keeps_each_report_once() -> None:
    a, b = report("researcher", "notes"), report("writer", "draft")
    assert merge_reports([a], [a, b]) == [a, b]


def test_briefs_show_each_worker_only_what_it_needs() -> None:
    sources = get_index().search("bounded queue", 2)
    notes, draft = report("researcher", "NOTES", sources), report("writer", "DRAFT")
    researcher = brief_text("researcher", board(notes, draft))
    writer = brief_text("writer", board(notes))
    reviewer = brief_text("reviewer", board(notes, draft))
    assert "NOTES" not in researcher and "DRAFT" not in researcher and sources[0]["cite"] not in researcher
    assert "NOTES" in writer and sources[0]["cite"] in writer and "previous draft" not in writer
    assert "Draft to review:\nDRAFT" in reviewer


def test_writer_sees_its_draft_only_with_newer_feedback() -> None:
    notes, draft, review = report("researcher", "N"), report("writer", "D1"), report("reviewer", "Cite more")
    assert "Reviewer feedback to address:\nCite more" in brief_text("writer", board(notes, draft, review))
    assert "previous draft" not in brief_text("writer", board(notes, review, draft))
    assert "Reviewer feedback to address:\nFix X" in brief_text("writer", board(notes, draft, feedback="Fix X"))


def test_retrieved_sources_come_from_tool_artifacts() -> None:
    [hit] = get_index().search("thundering herd", 1)
    messages = [
        HumanMessage("brief"),
        AIMessage("", tool_calls=[{"name": "search_knowledge_base", "args": {}, "id": "1"}]),
        ToolMessage("{}", tool_call_id="1", artifact=[hit, hit]),
        AIMessage("notes"),
    ]
    assert retrieved_sources(messages) == [hit]
    assert gathered_sources([report("researcher", "n", [hit])]) == [hit]


def test_web_citations_resolve_only_when_retrieved() -> None:
    web = Source(
        cite="[web:1a2b3c4d]", origin="web", file="https://example.org", passage=1, heading="E", text="t", score=1
    )
    found, missing = cited_sources("Claim [web:1a2b3c4d]. Other [web:ffffffff].", [report("researcher", "n", [web])])
    assert found == [web] and missing == []


def test_next_useful_worker_follows_research_write_review() -> None:
    notes, draft, review = report("researcher", "N"), report("writer", "D"), report("reviewer", "R")
    assert next_useful_worker([]) == "researcher"
    assert next_useful_worker([], exclude="researcher") == "writer"
    assert next_useful_worker([notes]) == "writer"
    assert next_useful_worker([notes, draft]) == "reviewer"
    assert next_useful_worker([notes, draft, review]) == "writer"
    assert next_useful_worker([notes, draft, review], exclude="writer") is None


def test_progress_ignores_repeated_identical_output() -> None:
    first = [report("researcher", "same", rid="1")]
    assert progress_fingerprint(first) == progress_fingerprint([*first, report("researcher", "same ", rid="2")])
    assert progress_fingerprint(first) != progress_fingerprint([*first, report("researcher", "new", rid="3")])
    assert normalize_task("Find sources!") == normalize_task("  find   SOURCES ")


def test_best_available_prefers_the_latest_draft() -> None:
    assert best_available([report("writer", "D1"), report("researcher", "N"), report("writer", "D2")]) == (
        "D2",
        "writer",
    )
    assert best_available([report("researcher", "N")]) == ("N", "researcher")
    assert best_available([])[1] == "supervisor"


def test_code_criteria_check_citations_and_length() -> None:
    words = " ".join(["word"] * 90)
    good = f"{words} [backpressure.md#2] [event_loops.md#4]"
    assert code_criteria(good, [])[0] == {"cites_sources": True, "citations_resolve": True, "length_ok": True}
    checks, missing = code_criteria("short [backpressure.md#2] [fake.md#1]", [])
    assert checks == {"cites_sources": False, "citations_resolve": False, "length_ok": False}
    assert missing == ["[fake.md#1]"]


def test_best_review_breaks_ties_towards_the_later_draft() -> None:
    def review(revision: int, score: float) -> Review:
        return Review(
            turn_id="t", draft_id=str(revision), revision=revision, criteria={}, score=score, feedback="", judged=True
        )

    assert best_review([review(0, 0.5), review(1, 0.7), review(2, 0.7), review(3, 0.2)])["revision"] == 2
