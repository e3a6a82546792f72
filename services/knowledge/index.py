"""The knowledge base: BM25 retrieval over a folder of documents, with citations.

Passages, not whole files, are the unit: a writer must cite exactly what supports a claim
(``[file#passage]``, with the section heading) and a reviewer must be able to check that the cited
passage exists. The index is built at first use and rebuilt whenever a file appears, disappears or
changes size or mtime, so users can drop documents into the folder while the server runs.
"""

from __future__ import annotations

import importlib.util
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from rank_bm25 import BM25Okapi

from loom.settings import Settings, get_settings
from state.team import Source

SHIPPED_KNOWLEDGE_DIR = Path(__file__).resolve().parent / "documents"
TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst"})
PASSAGE_WORDS = 170
"""Passage size: long enough to carry one argument, short enough to cite precisely."""

_CITE = re.compile(r"\[([^\[\]#\s]+\.[A-Za-z]+)#(\d+)\]")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """a an and are as at be but by can do does for from has have how if in into is it its more most not of on or
        so such than that the their them then there these they this to was were what when where which while who why
        will with without you your i we our
        write short article sources please""",  # the request's own words ("write a short article … with sources")
    )
)


class LuceneBM25(BM25Okapi):
    """Okapi BM25 with Lucene's always-positive IDF.

    rank-bm25's IDF is zero or negative for a word in half the passages or more, so a folder of one
    or two documents would find nothing; ``log(1 + (N - n + 0.5) / (n + 0.5))`` keeps every match.
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, count in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - count + 0.5) / (count + 0.5))


@dataclass(frozen=True)
class Passage:
    file: str
    index: int
    heading: str
    text: str

    @property
    def cite(self) -> str:
        return f"[{self.file}#{self.index}]"

    def as_source(self, score: float = 0.0) -> Source:
        return Source(
            cite=self.cite,
            origin="knowledge_base",
            file=self.file,
            passage=self.index,
            heading=self.heading,
            text=self.text,
            score=round(score, 4),
        )


def tokens(text: str) -> list[str]:
    """Lower-cased words minus stop words, lightly stemmed so "retries" finds "retry"."""
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


def _stem(word: str) -> str:
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) >= 6:
        word = word[:-3]
    elif word.endswith("ed") and len(word) >= 5:
        word = word[:-2]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]  # "schedule" and "scheduled" meet at "schedul"
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # "programm(ing)" → "program"
    return word


def markdown_blocks(text: str) -> list[tuple[str, str]]:
    """(heading path, block) pairs; blank lines end a block except inside code fences."""
    headings: list[str] = []
    blocks: list[tuple[str, str]] = []
    current: list[str] = []
    in_fence = False

    def flush() -> None:
        if "".join(current).strip():
            blocks.append((" > ".join(headings), "\n".join(current).strip()))
        current.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            flush()
            del headings[len(heading.group(1)) - 1 :]
            headings.append(heading.group(2))
        elif not in_fence and not line.strip():
            flush()
        else:
            current.append(line)
    flush()
    return blocks


def group_passages(blocks: list[tuple[str, str]], limit: int = PASSAGE_WORDS) -> list[tuple[str, str]]:
    """Join consecutive blocks of one section until ``limit`` words; a block is never split."""
    passages: list[tuple[str, str]] = []
    for heading, block in blocks:
        if passages and passages[-1][0] == heading and len((passages[-1][1] + block).split()) <= limit:
            passages[-1] = (heading, passages[-1][1] + "\n\n" + block)
        else:
            passages.append((heading, block))
    return passages


def document_blocks(path: Path) -> list[tuple[str, str]]:
    if path.suffix.lower() == ".pdf":
        from pypdf import PdfReader

        pages = [page.extract_text() or "" for page in PdfReader(path).pages]
        return [(f"page {number}", block) for number, text in enumerate(pages, 1) for _, block in markdown_blocks(text)]
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() in {".md", ".markdown"}:
        return markdown_blocks(text)
    return [("", block) for block in re.split(r"\n\s*\n", text) if block.strip()]


def indexable(path: Path) -> bool:
    suffix = path.suffix.lower()
    return path.is_file() and (suffix in TEXT_SUFFIXES or (suffix == ".pdf" and _pdf_support()))


def _pdf_support() -> bool:
    return importlib.util.find_spec("pypdf") is not None


def unreadable_pdfs(folder: Path) -> list[str]:
    """PDFs left out because pypdf is not installed, so the tool can say so instead of silently missing them."""
    if _pdf_support() or not folder.is_dir():
        return []
    return [f"{p.relative_to(folder).as_posix()}: needs pypdf (pip install 'loom[pdf]')" for p in folder.rglob("*.pdf")]


Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(folder: Path) -> Fingerprint:
    """(relative path, mtime, size) of every document; any change means a rebuild."""
    if not folder.is_dir():
        return ()
    entries = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not indexable(path):
            continue
        stat = path.stat()
        entries.append((relative.as_posix(), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


class KnowledgeIndex:
    """BM25 over every passage of one folder, as it was when ``fingerprint`` was taken."""

    def __init__(self, folder: Path, stamp: Fingerprint) -> None:
        self.folder = folder
        self.fingerprint = stamp
        self.passages: list[Passage] = []
        self.skipped: list[str] = unreadable_pdfs(folder)
        for relative, _, _ in stamp:
            try:
                blocks = document_blocks(folder / relative)
            except Exception as exc:  # one unreadable file must not hide the others
                self.skipped.append(f"{relative}: {exc}")
                continue
            for number, (heading, text) in enumerate(group_passages(blocks), 1):
                self.passages.append(Passage(relative, number, heading, text))
        corpus = [tokens(f"{p.heading} {p.text}") for p in self.passages]
        self._bm25 = LuceneBM25(corpus) if corpus else None
        self._by_cite = {p.cite: p for p in self.passages}

    def search(self, query: str, limit: int) -> list[Source]:
        words = tokens(query)
        if self._bm25 is None or not words:
            return []
        scores = self._bm25.get_scores(words)
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:limit]
        return [self.passages[i].as_source(float(scores[i])) for i in ranked if scores[i] > 0]

    def passage(self, cite: str) -> Passage | None:
        return self._by_cite.get(cite.strip())


_indexes: dict[Path, KnowledgeIndex] = {}
_indexes_lock = threading.Lock()


def knowledge_dir(settings: Settings | None = None) -> Path:
    return ((settings or get_settings()).knowledge_dir or SHIPPED_KNOWLEDGE_DIR).expanduser().resolve()


def get_index(folder: Path | None = None) -> KnowledgeIndex:
    """The folder's index, rebuilt first if any document changed since it was built."""
    folder = (folder or knowledge_dir()).resolve()
    stamp = fingerprint(folder)
    with _indexes_lock:
        index = _indexes.get(folder)
        if index is None or index.fingerprint != stamp:
            index = _indexes[folder] = KnowledgeIndex(folder, stamp)
        return index


def cited_markers(text: str) -> list[str]:
    """``[file#n]`` markers in order of first appearance."""
    return list(dict.fromkeys(f"[{m.group(1)}#{m.group(2)}]" for m in _CITE.finditer(text)))


def resolve_citations(text: str, index: KnowledgeIndex | None = None) -> tuple[list[Source], list[str]]:
    """(passages the text cites that exist, markers that point at nothing)."""
    index = index or get_index()
    found: list[Source] = []
    missing: list[str] = []
    for marker in cited_markers(text):
        passage = index.passage(marker)
        if passage is None:
            missing.append(marker)
        else:
            found.append(passage.as_source())
    return found, missing
