"""The price table: dated snapshots priced as their model, local models free, unknown models never guessed."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from loom.settings import Settings, get_settings
from nodes.models import call_model, model_for, settings_models


def test_prices_per_million_tokens_from_the_built_in_table() -> None:
    settings = Settings()
    assert settings.cost_usd("openai:gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert settings.cost_usd("openai:gpt-4o-mini-2024-07-18", 1_000, 0) == pytest.approx(0.00015)
    assert settings.cost_usd("local:smollm2", 10_000, 10_000) == 0.0
    assert settings.cost_usd("fake", 10, 10) == 0.0
    assert settings.cost_usd("openai:gpt-4o-audio-preview", 10, 10) is None  # not gpt-4o's price
    assert settings.cost_usd("gpt-4o-mini", 10, 10) is None  # without its provider a name is not priced


def test_loom_model_prices_adds_and_overrides_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    prices = '{"openai:gpt-4o-mini": {"input": 1, "output": 2}, "azure:my-deployment": {"input": 3, "output": 4}}'
    monkeypatch.setenv("LOOM_MODEL_PRICES", prices)
    settings = Settings()
    assert settings.cost_usd("openai:gpt-4o-mini", 1_000_000, 1_000_000) == 3.0
    assert settings.cost_usd("azure:my-deployment", 1_000_000, 0) == 3.0
    assert settings.cost_usd("openai:gpt-4o", 1_000_000, 0) == 2.5  # the rest of the table stays


async def test_a_nodes_usage_record_carries_its_cost(openai_server: Any) -> None:
    openai_server.add("four words of answer")
    model = await model_for(settings_models, "writer")
    _, usage = await call_model(model, [HumanMessage("write five words for me")], node="writer", config={})
    expected = get_settings().cost_usd("openai:gpt-4o-mini", usage["input_tokens"], usage["output_tokens"])
    assert usage["input_tokens"] == 5 and usage["output_tokens"] == 4
    assert usage["cost_usd"] == expected and expected is not None and expected > 0
