"""Model choice by ``provider:model`` strings, one place for every graph.

- ``openai:<model>``: langchain-openai (``OPENAI_API_KEY``/``OPENAI_BASE_URL`` for any
  OpenAI-compatible server; Azure when ``AZURE_OPENAI_ENDPOINT`` is set).
- ``local:<name-or-path>``: a GGUF model in process (default ``local:smollm2``, shipped on PyPI).
- ``fake:`` / ``fake:<script.json>``: the deterministic scripted model used by tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.types import RetryPolicy

from loom.settings import Settings, get_settings, model_key
from nodes.models.fake import FakeChatModel
from state.common import UsageRecord

ModelProvider = Callable[[str], BaseChatModel]
"""Returns the chat model for a role ("router", "writer", …)."""

_fake_models: dict[str, FakeChatModel] = {}


def load_chat_model(spec: str, settings: Settings | None = None) -> BaseChatModel:
    settings = settings or get_settings()
    provider, _, name = spec.partition(":")
    if provider == "openai":
        return _openai_model(name, settings)
    if provider == "local":
        from nodes.models.local import local_chat_model, resolve_model_path

        return local_chat_model(spec, resolve_model_path(name or "smollm2"), settings)
    if provider == "fake":  # one instance per script, so its cursor survives across calls; read once
        return _fake_models.get(spec) or _fake_models.setdefault(spec, FakeChatModel.from_spec(name))
    raise ValueError(f"unknown model provider {provider!r} in {spec!r}: use openai:, local: or fake:")


def _openai_model(name: str, settings: Settings) -> BaseChatModel:
    from langchain_openai import AzureChatOpenAI, ChatOpenAI

    common: dict[str, Any] = {
        "temperature": settings.model_temperature,
        "max_tokens": settings.model_max_tokens,
        "stream_usage": True,
        "max_retries": 0,  # graph nodes retry with RetryPolicy, inside the run's budget
    }
    if settings.azure_openai_endpoint:
        return AzureChatOpenAI(
            azure_deployment=name,
            azure_endpoint=settings.azure_openai_endpoint,
            api_key=settings.azure_openai_api_key,
            api_version=settings.openai_api_version,
            **common,
        )
    return ChatOpenAI(model=name, api_key=settings.openai_api_key, base_url=settings.openai_base_url, **common)


async def model_for(models: ModelProvider, role: str) -> BaseChatModel:
    """``models(role)`` off the event loop: building a provider client imports modules and loads certificates."""
    return await asyncio.to_thread(models, role)


def settings_models(role: str) -> BaseChatModel:
    """The default provider: the role's model from the current settings."""
    settings = get_settings()
    return load_chat_model(settings.model_for(role), settings)


_retry_budget: ContextVar[list[int] | None] = ContextVar("loom_retry_budget", default=None)


@contextmanager
def retry_budget(retries: int) -> Iterator[None]:
    """Cap the retries of every node in this run together (the server opens one per run)."""
    token = _retry_budget.set([retries])
    try:
        yield
    finally:
        _retry_budget.reset(token)


def is_transient_error(exc: BaseException) -> bool:
    """``RetryPolicy.retry_on``: transient provider errors, while the run's retry budget lasts."""
    if not is_transient(exc):
        return False
    budget = _retry_budget.get()
    if budget is None:
        return True
    if budget[0] <= 0:
        return False
    budget[0] -= 1
    return True


TRANSIENT_RETRY = RetryPolicy(
    max_attempts=3, initial_interval=0.5, backoff_factor=2.0, jitter=True, retry_on=is_transient_error
)
"""For model and tool nodes: exponential backoff with jitter on transient errors, within the run's budget."""


def is_transient(exc: BaseException) -> bool:
    """Timeouts, rate limits, provider 5xx and dropped connections."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    return isinstance(exc, TimeoutError | ConnectionError) or type(exc).__name__ in {
        "APITimeoutError",
        "APIConnectionError",
        "RateLimitError",
        "InternalServerError",
    }


async def call_model(
    model: Runnable[Any, Any], messages: list[BaseMessage], *, node: str, config: RunnableConfig
) -> tuple[Any, UsageRecord]:
    """Invoke a chat model (or its structured form with ``include_raw``) and record its usage."""
    started = time.perf_counter()
    result = await model.ainvoke(messages, config)
    raw = result["raw"] if isinstance(result, dict) and "raw" in result else result
    return result, usage_of(raw, node, (time.perf_counter() - started) * 1000)


def usage_of(message: Any, node: str, latency_ms: float) -> UsageRecord:
    usage = getattr(message, "usage_metadata", None) or {}
    metadata = message.response_metadata if isinstance(message, AIMessage) else {}
    model = str(metadata.get("model_name") or metadata.get("model") or "unknown")
    return priced_usage(node, model, metadata.get("model_provider"), usage, latency_ms)


def priced_usage(
    node: str, model: str, provider: str | None, usage: Mapping[str, Any], latency_ms: float
) -> UsageRecord:
    """A usage record with its USD cost from the price table (None when the model has no price)."""
    input_tokens, output_tokens = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return UsageRecord(
        node=node,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=round(latency_ms, 1),
        cost_usd=get_settings().cost_usd(model_key(provider, model), input_tokens, output_tokens),
    )
