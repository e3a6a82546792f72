"""search_knowledge_base retrieves real passages with citations, follows file changes, and web search stays honest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import ToolMessage
from pydantic import SecretStr

from loom.settings import Settings, get_settings
from nodes.tools import web_search
from nodes.tools.knowledge import get_passage, research_tools, search_knowledge_base
from services.knowledge import index as knowledge_index
from services.knowledge.index import SHIPPED_KNOWLEDGE_DIR, get_index, markdown_blocks, resolve_citations, tokens


def use_folder(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("LOOM_KNOWLEDGE_DIR", str(folder))
    get_settings.cache_clear()


def call_search(query: str, limit: int = 0) -> ToolMessage:
    call = {"name": "search_knowledge_base", "args": {"query": query, "limit": limit}, "id": "c1", "type": "tool_call"}
    message = search_knowledge_base.invoke(call)
    assert isinstance(message, ToolMessage)
    return message


def test_shipped_articles_answer_the_async_question_with_citations() -> None:
    message = call_search("impact of async programming")
    payload = json.loads(message.text)
    assert payload["results"] == message.artifact
    top = message.artifact[0]
    assert top["file"] == "async_programming_in_python.md"
    assert top["cite"] == f"[{top['file']}#{top['passage']}]"
    assert top["text"] in (SHIPPED_KNOWLEDGE_DIR / top["file"]).read_text()
    assert "Impact" in top["heading"]
    assert len(message.artifact) == get_settings().knowledge_top_k
    assert [r["score"] for r in message.artifact] == sorted((r["score"] for r in message.artifact), reverse=True)


@pytest.mark.parametrize(
    ("query", "expected_file"),
    [
        ("jitter thundering herd", "retries_with_backoff.md"),
        ("bounded queue producer consumer", "backpressure.md"),
        ("Global Interpreter Lock", "concurrency_vs_parallelism.md"),
        ("epoll kqueue readiness", "event_loops.md"),
        ("TaskGroup ExceptionGroup", "structured_concurrency.md"),
    ],
)
def test_each_demo_topic_is_found_first(query: str, expected_file: str) -> None:
    assert get_index().search(query, 3)[0]["file"] == expected_file


def test_nothing_relevant_returns_no_results() -> None:
    assert get_index().search("zebra giraffe", 5) == []
    assert get_index().search("the of and", 5) == []


def test_stemming_matches_word_forms() -> None:
    assert tokens("Retries") == tokens("retry")
    assert tokens("programming") == tokens("program")
    assert tokens("scheduled queues") == tokens("schedule queue")


def test_markdown_sections_keep_code_fences_whole() -> None:
    text = "# Guide\nIntro.\n\n## Setup\n```python\n# not a heading\n\nx = 1\n```\n\nAfter."
    assert markdown_blocks(text) == [
        ("Guide", "Intro."),
        ("Guide > Setup", "```python\n# not a heading\n\nx = 1\n```"),
        ("Guide > Setup", "After."),
    ]


def test_folder_comes_from_settings_and_changes_are_reindexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Notes\n\nThe kiwi deployment uses canary releases.\n")
    (docs / "plain.txt").write_text("First paragraph about lanterns.\n\nSecond paragraph about kiwi orchards.\n")
    use_folder(monkeypatch, docs)
    assert [r["cite"] for r in call_search("kiwi").artifact] == ["[notes.md#1]", "[plain.txt#1]"]
    assert call_search("mango").artifact == []

    notes = docs / "notes.md"
    notes.write_text("# Notes\n\nThe mango rollout replaced the old plan entirely.\n")
    os.utime(notes, ns=(notes.stat().st_atime_ns, notes.stat().st_mtime_ns + 1_000_000_000))
    assert [r["cite"] for r in call_search("mango").artifact] == ["[notes.md#1]"]
    (docs / "plain.txt").unlink()
    assert call_search("kiwi").artifact == []


def test_empty_folder_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_folder(monkeypatch, tmp_path / "missing")
    payload = json.loads(call_search("anything").text)
    assert payload["results"] == [] and "no Markdown, text or PDF" in payload["error"]


def minimal_pdf(text: str) -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def test_pdf_text_is_indexed_by_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pypdf")
    (tmp_path / "paper.pdf").write_bytes(minimal_pdf("Semaphores bound concurrency in crawlers"))
    use_folder(monkeypatch, tmp_path)
    [hit] = call_search("semaphore crawler").artifact
    assert (hit["cite"], hit["heading"]) == ("[paper.pdf#1]", "page 1")
    assert "Semaphores bound concurrency" in hit["text"]


def test_citations_resolve_only_to_real_passages() -> None:
    found, missing = resolve_citations(
        "Async helps I/O [async_programming_in_python.md#3]. Jitter [retries_with_backoff.md#4] "
        "and again [async_programming_in_python.md#3]. Made up [nowhere.md#1] [event_loops.md#99]."
    )
    assert [s["cite"] for s in found] == ["[async_programming_in_python.md#3]", "[retries_with_backoff.md#4]"]
    assert "I/O-bound" in found[0]["heading"]
    assert missing == ["[nowhere.md#1]", "[event_loops.md#99]"]
    assert json.loads(get_passage.invoke({"cite": "[event_loops.md#4]"}))["heading"].endswith("Blocking the loop")
    assert "error" in json.loads(get_passage.invoke({"cite": "[event_loops.md#99]"}))


def test_web_search_is_absent_offline_and_present_with_a_key() -> None:
    assert [t.name for t in research_tools()] == ["search_knowledge_base"]
    configured = Settings(tavily_api_key=SecretStr("tvly-test"))
    assert [t.name for t in research_tools(configured)] == ["search_knowledge_base", "search_web"]
    assert all(t.metadata and t.metadata["permission"] == "read" for t in research_tools(configured))


def test_tavily_results_share_the_citation_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        results = [
            {"title": "PEP 492", "url": "https://peps.python.org/pep-0492/", "content": "async/await", "score": 0.9}
        ]
        return httpx.Response(200, json={"query": "q", "results": results})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        [source] = web_search.tavily_search("async await", 3, "tvly-test", client)
    assert seen[0].headers["Authorization"] == "Bearer tvly-test"
    assert json.loads(seen[0].content)["max_results"] == 3
    assert source["origin"] == "web" and source["file"] == "https://peps.python.org/pep-0492/"
    assert source["cite"].startswith("[web:") and source["heading"] == "PEP 492"


def test_web_search_failure_is_reported_not_faked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_TAVILY_API_KEY", "tvly-test")
    get_settings.cache_clear()

    def offline(*args: object, **kwargs: object) -> list[object]:
        raise httpx.ConnectError("no route to host")

    monkeypatch.setattr(web_search, "tavily_search", offline)
    payload = json.loads(web_search.search_web.invoke({"query": "async"}))
    assert payload["results"] == [] and "web search failed" in payload["error"]


def test_pdfs_without_pypdf_are_reported_not_silently_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "paper.pdf").write_bytes(minimal_pdf("Semaphores bound concurrency"))
    (tmp_path / "notes.md").write_text("# Notes\n\nSemaphores again.\n")
    monkeypatch.setattr(knowledge_index, "_pdf_support", lambda: False)
    use_folder(monkeypatch, tmp_path)
    payload = json.loads(call_search("semaphores").text)
    assert [r["cite"] for r in payload["results"]] == ["[notes.md#1]"]
    assert payload["skipped"] == ["paper.pdf: needs pypdf (pip install 'loom[pdf]')"]
