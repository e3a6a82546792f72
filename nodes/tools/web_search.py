"""``search_web``: Tavily web search behind the same result shape as ``search_knowledge_base``.

The tool is offered only when ``tavily_api_key`` is set (see ``nodes.tools.knowledge.research_tools``);
without a key it is absent rather than returning made-up results. A failed request is reported to
the model as an error, never replaced by invented pages.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
from langchain_core.tools import tool

from loom.settings import get_settings
from nodes.common.permissions import declare
from state.team import Source

TAVILY_URL = "https://api.tavily.com/search"
TIMEOUT_S = 20.0


def tavily_search(query: str, limit: int, api_key: str, client: httpx.Client | None = None) -> list[Source]:
    """Tavily's top ``limit`` results as sources cited ``[web:<url hash>]``; raises ``httpx.HTTPError`` on failure."""
    owned = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S)
    try:
        response = client.post(
            TAVILY_URL,
            headers={"Authorization": f"Bearer {api_key}"},
            json={"query": query, "max_results": limit, "search_depth": "basic"},
        )
        response.raise_for_status()
        results: list[dict[str, Any]] = response.json().get("results") or []
    finally:
        if owned:
            client.close()
    return [_source(number, item) for number, item in enumerate(results[:limit], 1)]


def _source(number: int, item: dict[str, Any]) -> Source:
    url = str(item.get("url", ""))
    return Source(
        cite=f"[web:{hashlib.sha256(url.encode()).hexdigest()[:8]}]",  # stable across searches, unlike a rank
        origin="web",
        file=url,
        passage=number,
        heading=str(item.get("title", "")),
        text=str(item.get("content", "")),
        score=round(float(item.get("score") or 0.0), 4),
    )


@tool(response_format="content_and_artifact")
def search_web(query: str, limit: int = 0) -> tuple[str, list[Source]]:
    """Search the web for current pages about `query`; each result has a URL and a `cite` marker like [web:1a2b3c4d]."""
    settings = get_settings()
    key = settings.tavily_api_key.get_secret_value() if settings.tavily_api_key else ""
    payload: dict[str, object] = {"source": "web", "query": query, "results": []}
    if not key:
        payload["error"] = "web search is not configured: set LOOM_TAVILY_API_KEY"
        return json.dumps(payload), []
    try:
        results = tavily_search(query, limit if limit > 0 else settings.knowledge_top_k, key)
    except (httpx.HTTPError, ValueError) as exc:
        payload["error"] = f"web search failed: {exc}"
        return json.dumps(payload, ensure_ascii=False), []
    payload["results"] = results
    return json.dumps(payload, ensure_ascii=False), results


declare(search_web, "read")
