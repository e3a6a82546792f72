"""What a run spends (tokens, model calls, USD) and the budgets that stop it.

The meter is a LangChain callback handler on the run's config, so every model call of any graph is
counted, a served project's as well as Loom's own (whose nodes also keep usage in state). LangGraph
reports each node's start to the same callbacks; once a limit is reached, the next node is refused
there, before its body runs: the step before it is checkpointed, so a run with a larger budget
resumes on the thread from that checkpoint and no node runs twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from loom.settings import Budget, Settings, model_key
from server.db import RunRow
from server.engine.attempt import RunAttempt
from server.observability import metrics

LimitName = Literal["usd", "tokens", "model_calls"]
Totals = dict[str, Any]
"""``{input_tokens, output_tokens, total_tokens, model_calls, cost_usd}``; cost None when a model had no price."""


@dataclass(frozen=True)
class Limit:
    """One ceiling: ``allowed`` of ``limit`` for ``scope`` (run, assistant, user_day), ``before`` already spent."""

    limit: LimitName
    allowed: float
    scope: str
    before: float | None = 0.0
    """None when earlier runs used a model without a price: a USD limit then cannot be kept, so it stops the run."""


class BudgetExceeded(RuntimeError):
    """A RuntimeError, so LangGraph's default retry policy does not retry the refused node."""

    def __init__(self, limit: Limit, spent: float | None, unpriced: list[str]) -> None:
        count = (lambda n: n) if limit.limit == "usd" else int  # tokens and calls are whole numbers
        self.error: dict[str, Any] = {
            "error": "budget_exceeded",
            "limit": limit.limit,
            "scope": limit.scope,
            "spent": None if spent is None else count(spent),
            "allowed": count(limit.allowed),
        }
        if spent is None:
            self.error["unpriced_models"] = unpriced
        what = f"spent {self.error['spent']}" if spent is not None else f"cost unknown, no price: {', '.join(unpriced)}"
        self.error["message"] = f"{limit.scope} budget of {self.error['allowed']} {limit.limit} reached: {what}"
        super().__init__(self.error["message"])


class UsageMeter(BaseCallbackHandler):
    """Counts the run's model calls from callbacks and refuses a node once a limit is reached.

    Synchronous and inline: LangGraph calls it on the event loop without a thread hop, and an
    exception from ``on_chain_start`` (``raise_error``) fails the node before it starts.
    """

    raise_error = True
    run_inline = True

    def __init__(self, settings: Settings, limits: list[Limit]) -> None:
        self.settings = settings
        self.limits = limits
        self.records: list[dict[str, Any]] = []
        self.calls = 0
        self._open: dict[UUID, tuple[str, str]] = {}

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, metadata: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        self._started(run_id, metadata or {})

    def on_llm_start(
        self, serialized: Any, prompts: Any, *, run_id: UUID, metadata: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        self._started(run_id, metadata or {})

    def _started(self, run_id: UUID, metadata: dict[str, Any]) -> None:
        self.calls += 1
        model = model_key(metadata.get("ls_provider"), str(metadata.get("ls_model_name") or "unknown"))
        self._open[run_id] = (str(metadata.get("langgraph_node") or "(outside a node)"), model)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kw: Any) -> None:
        node, model = self._open.pop(run_id, ("(outside a node)", "unknown"))
        message = getattr(response.generations[0][0], "message", None) if response.generations else None
        usage = getattr(message, "usage_metadata", None) or {}
        metadata = getattr(message, "response_metadata", None) or {}
        if name := metadata.get("model_name"):
            model = model_key(metadata.get("model_provider") or model.partition(":")[0], str(name))
        tokens_in, tokens_out = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        cost = self.settings.cost_usd(model, tokens_in, tokens_out)
        if cost is not None and self.settings.metrics:
            metrics.MODEL_COST.labels(model, node).inc(cost)
        self.records.append({"node": node, "model": model, "input_tokens": tokens_in, "output_tokens": tokens_out,
                             "model_calls": 1, "cost_usd": cost})  # fmt: skip

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        """A failed call is counted (it was made); its tokens are unknown, so none are added."""
        node, model = self._open.pop(run_id, ("(outside a node)", "unknown"))
        self.records.append({"node": node, "model": model, "input_tokens": 0, "output_tokens": 0,
                             "model_calls": 1, "cost_usd": 0.0})  # fmt: skip

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: UUID, metadata: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node is not None and kw.get("name") == node and self.limits:
            self.check()

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` if any limit is reached."""
        totals = summarize(self.records)
        for limit in self.limits:
            spent = spent_on(totals, limit.limit, self.calls)
            if spent is None or limit.before is None:
                raise BudgetExceeded(limit, None, totals["unpriced_models"] or ["(an earlier run today)"])
            if limit.before + spent >= limit.allowed:
                raise BudgetExceeded(limit, round(limit.before + spent, 10), [])

    def summary(self) -> dict[str, Any]:
        return summarize(self.records)


def spent_on(totals: Totals, limit: LimitName, calls: int | None = None) -> float | None:
    if limit == "usd":
        cost: float | None = totals["cost_usd"]
        return cost
    if limit == "tokens":
        return float(totals["total_tokens"])
    return float(totals["model_calls"] if calls is None else calls)


def _add(into: Totals, item: Totals) -> None:
    for key in ("input_tokens", "output_tokens", "total_tokens", "model_calls"):
        into[key] = into.get(key, 0) + item.get(key, 0)
    known = into.get("cost_usd", 0.0) is not None and item.get("cost_usd") is not None
    into["cost_usd"] = round(into.get("cost_usd", 0.0) + item["cost_usd"], 10) if known else None


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals, by node and by model; a cost is None (unknown) wherever a model without a price was used."""
    return merge({"by_node": {r["node"]: _totals(r)}, "by_model": {r["model"]: _totals(r)}, **_totals(r)}
                 for r in records)  # fmt: skip


def _totals(record: dict[str, Any]) -> Totals:
    tokens = record["input_tokens"] + record["output_tokens"]
    return {"input_tokens": record["input_tokens"], "output_tokens": record["output_tokens"],
            "total_tokens": tokens, "model_calls": record["model_calls"], "cost_usd": record["cost_usd"]}  # fmt: skip


def merge(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' summaries as one (a thread's usage)."""
    merged: dict[str, Any] = {**_totals(_ZERO), "by_node": {}, "by_model": {}}
    for summary in summaries:
        _add(merged, summary)
        for group in ("by_node", "by_model"):
            for name, totals in summary.get(group, {}).items():
                _add(merged[group].setdefault(name, _totals(_ZERO)), totals)
    merged["unpriced_models"] = sorted(m for m, t in merged["by_model"].items() if t["cost_usd"] is None)
    return merged


_ZERO = {"input_tokens": 0, "output_tokens": 0, "model_calls": 0, "cost_usd": 0.0}


async def run_limits(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], attempt: RunAttempt
) -> list[Limit]:
    """The run's limits: its request's ``context.budget``, and the server's ceilings (which it cannot raise)."""
    requested = (attempt.kwargs.get("context") or {}).get("budget")
    limits = _limits(Budget.model_validate(requested) if requested else None, "run")
    limits += _limits(settings.run_budget, "server")
    limits += _limits(settings.assistant_budgets.get(attempt.graph_id), "assistant")
    daily = settings.user_daily_budgets
    if (budget := daily.get(attempt.owner, daily.get("*"))) is not None:
        today = await spent_today(sessions, attempt.owner)
        limits += [
            Limit(limit.limit, limit.allowed, "user_day", spent_on(today, limit.limit))
            for limit in _limits(budget, "user_day")
        ]
    return limits


def _limits(budget: Budget | None, scope: str) -> list[Limit]:
    if budget is None:
        return []
    pairs: list[tuple[LimitName, float | None]] = [
        ("usd", budget.max_usd), ("tokens", budget.max_tokens), ("model_calls", budget.max_model_calls)
    ]  # fmt: skip
    return [Limit(name, float(allowed), scope) for name, allowed in pairs if allowed is not None]


async def spent_today(sessions: async_sessionmaker[AsyncSession], owner: str) -> Totals:
    """What the user's runs recorded since midnight UTC (runs still going count when they finish)."""
    midnight = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
    query = select(RunRow.usage).where(RunRow.owner == owner, RunRow.created_at >= midnight)
    async with sessions() as session:
        usages = (await session.scalars(query)).all()
    return merge(usage for usage in usages if usage)
