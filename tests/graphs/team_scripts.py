"""Scripted worker replies shared by the supervisor and pipeline tests.

The researcher really searches the shipped knowledge base; the writer cites whatever passage
markers its brief offers, so every citation in a test article comes from real retrieval.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from nodes.models.fake import tool_call
from tests.fixtures.openai_server import Reply, call, last_is_tool, replying, text, tools_offered, writing

GOAL = "Write a short article on the impact of async programming, with sources"


def notes_from_results(messages: list[BaseMessage]) -> AIMessage:
    results = [r for m in messages if isinstance(m, ToolMessage) for r in json.loads(m.text).get("results", [])]
    lines = [f"- {r['heading'].split(' > ')[-1]} {r['cite']}" for r in results[:4]]
    return AIMessage(content="Research notes:\n" + "\n".join(lines))


def article_citing_brief(messages: list[BaseMessage], version: int = 1, extra_marker: str = "") -> AIMessage:
    """A title, an intro, one paragraph per offered passage (its own words, then its marker), a conclusion."""
    brief = next(m.text for m in messages if isinstance(m, HumanMessage))
    offered = re.findall(r"^(\[[^\[\]\s]+#\d+\]) (.+?) — (.+)$", brief, re.MULTILINE)
    paragraphs = [
        f"{heading.split(' > ')[-1]}: {' '.join(text.split()[:30])} {cite}" for cite, heading, text in offered[:3]
    ]
    if extra_marker:
        paragraphs.append(f"Async is also said to cure every bug {extra_marker}.")
    body = "\n\n".join(paragraphs)
    return AIMessage(
        content=f"# The impact of async programming (v{version})\n\nAsync programming changes how services wait, "
        f"scale and fail.\n\n{body}\n\nIn short, async pays off for I/O-bound work and costs discipline."
    )


def researcher_script(query: str = "impact of async programming") -> list[Any]:
    return [tool_call("search_knowledge_base", {"query": query}), notes_from_results]


def writer_script(versions: int = 1, made_up_in_first: str = "") -> list[Any]:
    """``versions`` articles; the first may carry a citation marker that points at nothing."""
    return [
        lambda messages, v=v: article_citing_brief(messages, v, made_up_in_first if v == 1 else "")
        for v in range(1, versions + 1)
    ]


def served_research_and_article() -> list[Reply]:
    """The researcher and the writer as the scripted OpenAI server answers them: a real knowledge-base
    search, notes from its results, then an article citing the brief."""
    query = {"query": "impact of async programming"}
    return [
        call("search_knowledge_base", query, when=tools_offered("search_knowledge_base")),
        text(replying(notes_from_results), when=last_is_tool),
        text(replying(article_citing_brief), when=writing),
    ]
