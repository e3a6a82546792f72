"""The pipeline's own nodes: intake, the rubric review that drives the revise loop, and publish.

The rubric mixes code checks (citations resolve, enough of them, length) with an LLM judge's yes/no
criteria, as seed 001 recommends: facts a program can verify are never left to the model. The loop
revises until the share of criteria passed reaches ``review_threshold`` with every code check passed,
at most ``max_revisions`` times; publishing at the limit keeps the best-scoring draft, not the last one.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.types import Command

from loom.settings import get_settings
from nodes.models import ModelProvider, model_for
from nodes.models.outputs import ask_structured
from nodes.team.workers import cited_sources, format_sources, gathered_sources, latest
from state.pipeline import ArticleJudgement, PipelineState, Review
from state.team import WorkerReport

MIN_CITATIONS = 2
MIN_WORDS, MAX_WORDS = 80, 1200
REVISE_INSTRUCTION = "Revise your previous draft so that it fixes every point of the reviewer feedback."

CODE_CRITERIA = {
    "cites_sources": f"cites at least {MIN_CITATIONS} different real passages",
    "citations_resolve": "every citation marker points at a real passage",
    "length_ok": f"is between {MIN_WORDS} and {MAX_WORDS} words long",
}
JUDGE_CRITERIA = {
    name: str(field.description) for name, field in ArticleJudgement.model_fields.items() if name != "explanation"
}
JUDGE_INSTRUCTIONS = (
    "You are a strict reviewer. Judge the draft against each yes/no criterion independently; answer false "
    "when unsure. Then say in one or two sentences what to fix."
)


def intake(state: PipelineState) -> dict[str, Any]:
    """Each user message is a new goal; earlier drafts stay on the board as context only."""
    human = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
    return {"turn_id": human.id, "goal": human.text, "instruction": "", "feedback": ""}


def code_criteria(text: str, reports: list[WorkerReport]) -> tuple[dict[str, bool], list[str]]:
    found, missing = cited_sources(text, reports)
    words = len(text.split())
    checks = {
        "cites_sources": len(found) >= MIN_CITATIONS,
        "citations_resolve": not missing,
        "length_ok": MIN_WORDS <= words <= MAX_WORDS,
    }
    return checks, missing


async def judge(
    models: ModelProvider, goal: str, draft: str, reports: list[WorkerReport], config: RunnableConfig
) -> tuple[ArticleJudgement | None, list[Any]]:
    criteria = "\n".join(f"- {name}: {text}" for name, text in JUDGE_CRITERIA.items())
    prompt = (
        f"Goal: {goal}\n\nCriteria:\n{criteria}\n\nCited passages:\n{format_sources(gathered_sources(reports))}"
        f"\n\nDraft:\n{draft}"
    )
    messages = [SystemMessage(content=JUDGE_INSTRUCTIONS), HumanMessage(content=prompt)]
    reply = await ask_structured(
        await model_for(models, "judge"), ArticleJudgement, messages, node="review", config=config
    )
    return reply.value, reply.usages


def feedback_text(criteria: dict[str, bool], judgement: ArticleJudgement | None, missing: list[str]) -> str:
    descriptions = {**CODE_CRITERIA, **JUDGE_CRITERIA}
    lines = [f"- The article must meet this: it {descriptions[name]}." for name, ok in criteria.items() if not ok]
    if missing:
        lines.append(f"- Remove or replace citation markers that match no passage: {', '.join(missing)}.")
    if judgement is None:
        lines.append("- The judge could not give a verdict; make the article plainly meet every criterion.")
    elif judgement.explanation.strip():
        lines.append(f"- Reviewer: {judgement.explanation.strip()}")
    return "\n".join(lines)


def make_review(models: ModelProvider) -> Any:
    async def review(state: PipelineState, config: RunnableConfig) -> Command[Literal["revise", "publish"]]:
        reports = state.get("reports", [])
        draft = latest(reports, "writer")
        assert draft is not None, "review runs only after the writer"
        checks, missing = await asyncio.to_thread(code_criteria, draft["output"], reports)  # scans the index folder
        judgement, usage = await judge(models, state["goal"], draft["output"], reports, config)
        verdict = judgement.model_dump() if judgement else {}
        criteria = {**checks, **{name: bool(verdict.get(name, False)) for name in JUDGE_CRITERIA}}
        earlier = [r for r in state.get("reviews", []) if r["turn_id"] == state["turn_id"]]
        record = Review(
            turn_id=state["turn_id"],
            draft_id=draft["id"],
            revision=len(earlier),
            criteria=criteria,
            score=round(sum(criteria.values()) / len(criteria), 4),
            feedback=feedback_text(criteria, judgement, missing),
            judged=judgement is not None,
        )
        return route_after_review(record, earlier, usage)

    return review


def approved(record: Review, threshold: float) -> bool:
    """Enough criteria passed, and every code check among them: a made-up citation is never outvoted."""
    return record["score"] >= threshold and all(record["criteria"][name] for name in CODE_CRITERIA)


def route_after_review(
    record: Review, earlier: list[Review], usage: list[Any]
) -> Command[Literal["revise", "publish"]]:
    settings = get_settings()
    passed = approved(record, settings.review_threshold)
    at_limit = record["revision"] >= settings.max_revisions
    get_stream_writer()(
        {"event": "review", "revision": record["revision"], "score": record["score"], "criteria": record["criteria"]}
    )
    update: dict[str, Any] = {"reviews": [record], "usage": usage}
    if not passed and not at_limit:
        return Command(
            goto="revise", update={**update, "feedback": record["feedback"], "instruction": REVISE_INSTRUCTION}
        )
    best = best_review([*earlier, record])
    if passed:
        update |= {
            "finish_reason": "approved",
            "finish_detail": f"revision {record['revision']} scored {record['score']:.0%}",
        }
    else:
        update |= {
            "finish_reason": "revision_limit",
            "finish_detail": f"still below {settings.review_threshold:.0%} after {record['revision']} revision(s); "
            f"published the best draft, revision {best['revision']} at {best['score']:.0%}",
        }
    return Command(goto="publish", update={**update, "feedback": ""})


def best_review(reviews: list[Review]) -> Review:
    """Highest score wins; on a tie the later draft, which has answered more feedback."""
    return max(reviews, key=lambda r: (r["score"], r["revision"]))


def publish(state: PipelineState) -> dict[str, Any]:
    """The best draft verbatim as ``article``; the message adds the resolved sources below it."""
    reviews = [r for r in state.get("reviews", []) if r["turn_id"] == state["turn_id"]]
    reports = state.get("reports", [])
    best = best_review(reviews)
    article = next(r["output"] for r in reports if r["id"] == best["draft_id"])
    sources, missing = cited_sources(article, reports)
    listing = "\n".join(f"- {s['cite']} {s['file']} — {s['heading']}" for s in sources)
    message = f"{article}\n\n## Sources\n{listing}" if sources else article
    get_stream_writer()({"event": "published", "revision": best["revision"], "score": best["score"]})
    return {"article": article, "sources": sources, "unresolved_citations": missing, "messages": [AIMessage(message)]}
