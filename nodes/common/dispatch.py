"""Direct tool dispatch: the first stage of tool choice, as keyword routing is of agent choice.

When a request names its tool plainly ("search my calendar for AI events", "chart Q1 120, Q2 150"),
the tool call is built from the text without a model call: one round-trip saved on any provider,
and the right call even on the 135M embedded model. Anything less plain goes to the model.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from langchain_core.messages import ToolCall

from nodes.tools.charts import parse_series

Dispatcher = Callable[[str], list[ToolCall]]

WORKSPACE_SOURCES = {
    "search_calendar": r"calendar|meetings?|events?|schedule|appointments?|agenda",
    "search_emails": r"e-?mails?|inbox|mail\b|emailed",
    "search_files": r"files?|documents?|docs?\b|drive|reports?",
    "search_messages": r"messages?|messaged|slack|dms?\b|chats?\b",
}
_EVERYTHING = re.compile(r"\b(everything|all sources|anything)\b", re.IGNORECASE)
_QUOTED = re.compile(r"[\"'“‘]([^\"'”’]{2,80})[\"'”’]")
_FILLER = re.compile(
    r"\b(please|can you|could you|tell me|search|find|look up|look for|check|show me|show|list|get|what|which|when|who|"
    r"do i have|did|anyone|anything|everything|my|me|i|for|about|on|in|from|the|a|an|any|of|and|or|is|are|"
    r"related to|regarding|all)\b",
    re.IGNORECASE,
)
_CSV = re.compile(r"\b([\w./-]+\.csv)\b", re.IGNORECASE)
_IMAGE_LEAD = re.compile(
    r"^\s*(please\s+)?(generate|create|make|draw|paint|render|design|sketch|show me)\s+(me\s+)?"
    r"(an?\s+)?(image|picture|photo|illustration|drawing|painting|visual)?\s*(of\s+)?",
    re.IGNORECASE,
)

_CHART_LEAD = re.compile(
    r"^\s*(please\s+)?((can|could) you\s+)?(create|make|draw|plot|chart|graph|show|visuali[sz]e|render|give)?\s*"
    r"(me\s+)?((an?|the)\s+)?((bar|line|pie)\s+)?((chart|graph|plot)s?\s+)?((of|for|from|showing|with|about)\s+)?",
    re.IGNORECASE,
)
_CHART_WORDS = re.compile(
    r"\b(this|the|my|following|these|some)\s+(data|numbers|figures|values)\b"
    r"|\b(as\s+)?(an?\s+)?(bar\s+|line\s+|pie\s+)?(chart|graph|plot)s?\s*$",
    re.IGNORECASE,
)


def _call(name: str, **args: object) -> ToolCall:
    return ToolCall(name=name, args=dict(args), id=f"call_{uuid.uuid4().hex[:12]}", type="tool_call")


def search_query(text: str) -> str:
    """What to search for: a quoted phrase if there is one, else the words that are not filler."""
    if quoted := _QUOTED.search(text):
        return quoted.group(1).strip()
    words = _FILLER.sub(" ", text)
    for pattern in WORKSPACE_SOURCES.values():
        words = re.sub(rf"\b({pattern})\b", " ", words, flags=re.IGNORECASE)
    return " ".join(re.sub(r"[^\w\s'-]", " ", words).split())


def workspace_calls(text: str) -> list[ToolCall]:
    sources = [name for name, pattern in WORKSPACE_SOURCES.items() if re.search(rf"\b({pattern})", text, re.I)]
    if _EVERYTHING.search(text):
        sources = list(WORKSPACE_SOURCES)
    query = search_query(text)
    return [_call(name, query=query) for name in sources] if query or sources else []


def chart_calls(text: str) -> list[ToolCall]:
    if csv_file := _CSV.search(text):
        return [_call("create_chart", csv_file=csv_file.group(1), title=csv_file.group(1))]
    data = text.split(":", 1)[1] if ":" in text else text
    labels, _values = parse_series(data)
    if len(labels) < 2:
        return []
    kind = "pie" if re.search(r"\bpie\b", text, re.I) else "line" if re.search(r"\bline|trend", text, re.I) else "bar"
    return [_call("create_chart", data=data.strip(), title=chart_title(text), kind=kind)]


def chart_title(text: str) -> str:
    """The title a request gives its chart before the data ("Plot monthly revenue: Jan 10, …" → "Monthly
    revenue"); empty when it names none ("Create a chart from this data: …"), so the tool titles it by its data."""
    head = text.split(":", 1)[0] if ":" in text else ""
    words = " ".join(_CHART_WORDS.sub(" ", _CHART_LEAD.sub("", head)).split()).strip(" ,.;-")
    return words[:1].upper() + words[1:80]


def image_calls(text: str) -> list[ToolCall]:
    prompt = _IMAGE_LEAD.sub("", text).strip(" .!?")
    return [_call("generate_image", prompt=prompt or text)] if prompt or text else []
