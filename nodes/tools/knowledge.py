"""``search_knowledge_base`` and ``get_passage``: the knowledge base (``services.knowledge``) as tools."""

from __future__ import annotations

import json

from langchain_core.tools import BaseTool, tool

from loom.settings import Settings, get_settings
from nodes.common.permissions import declare
from nodes.tools.web_search import search_web
from services.knowledge.index import get_index, knowledge_dir
from state.team import Source


@tool(response_format="content_and_artifact")
def search_knowledge_base(query: str, limit: int = 0) -> tuple[str, list[Source]]:
    """Search the local knowledge base (articles and notes) for passages about `query`.

    Each result has a `cite` marker like [async_python.md#3]: quote that marker after any claim
    that uses the passage. `limit` is the number of passages (0 = the configured default).
    """
    settings = get_settings()
    index = get_index(knowledge_dir(settings))
    results = index.search(query, limit if limit > 0 else settings.knowledge_top_k)
    payload: dict[str, object] = {"source": "knowledge_base", "query": query, "results": results}
    if not index.passages:
        payload["error"] = f"the knowledge folder {index.folder} has no Markdown, text or PDF documents"
    if index.skipped:
        payload["skipped"] = index.skipped
    return json.dumps(payload, ensure_ascii=False), results


@tool
def get_passage(cite: str) -> str:
    """The full text of one knowledge-base passage by its marker, e.g. "[event_loops.md#2]", to quote it exactly."""
    passage = get_index().passage(cite)
    if passage is None:
        return json.dumps({"cite": cite, "error": "no such passage; use a marker returned by search_knowledge_base"})
    return json.dumps(passage.as_source(), ensure_ascii=False)


for _tool in (search_knowledge_base, get_passage):
    declare(_tool, "read")


def research_tools(settings: Settings | None = None) -> list[BaseTool]:
    """The search tools this deployment really has: web search only when a provider key is set."""
    settings = settings or get_settings()
    tools: list[BaseTool] = [search_knowledge_base]
    if settings.tavily_api_key is not None and settings.tavily_api_key.get_secret_value():
        tools.append(search_web)
    return tools
