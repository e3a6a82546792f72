"""``store.index`` and ``store.ttl`` read from a ``langgraph.json`` as ``langgraph dev`` reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_openai import OpenAIEmbeddings
from pydantic import SecretStr

from loom.settings import Settings, get_settings
from server.registry import ConfigError
from server.store_config import embeddings, index_config, ttl_config

MEMO = Path(__file__).parents[1] / "data" / "projects" / "memo" / "langgraph.json"


def fixed(texts: list[str]) -> list[list[float]]:
    """An embedding function named by module path (``tests.server.test_store_config:fixed``)."""
    return [[float(len(text)), 1.0] for text in texts]


@pytest.fixture
def memo_config(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LOOM_GRAPHS_CONFIG", str(MEMO))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    return get_settings()


def test_embed_by_file_by_module_or_by_provider(memo_config: Settings) -> None:
    by_file = embeddings("./src/memo_agent/embed.py:embed", memo_config)
    assert len(by_file.embed_query("my cat Miso")) == 64
    assert embeddings("tests.server.test_store_config:fixed", memo_config).embed_query("abc") == [3.0, 1.0]
    with pytest.raises(ConfigError, match=r"store\.index\.embed: .*credentials"):
        embeddings("openai:text-embedding-3-small", memo_config)
    url, key = "http://127.0.0.1:9/v1", SecretStr("sk-test")
    settings = memo_config.model_copy(update={"openai_base_url": url, "openai_api_key": key})
    by_provider = embeddings("openai:text-embedding-3-small", settings)  # the key and base URL from settings
    assert isinstance(by_provider, OpenAIEmbeddings) and by_provider.openai_api_base == url


@pytest.mark.parametrize(
    ("index", "named"),
    [
        ({"dims": 3}, "store.index"),
        ({"embed": "./src/memo_agent/embed.py:embed", "dims": 0}, "store.index.dims"),
        ({"embed": "./src/memo_agent/embed.py:embed", "dims": True}, "store.index.dims"),
        ({"embed": "./src/memo_agent/embed.py:embed", "dims": 4, "fields": "text"}, "store.index.fields"),
        ({"embed": "no-provider-here", "dims": 4}, "store.index.embed"),
        ({"embed": "nosuchprovider:model", "dims": 4}, "store.index.embed"),
    ],
)
def test_a_bad_index_names_the_entry(memo_config: Settings, index: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        index_config(index, memo_config)


def test_ttl_is_passed_as_langgraph_takes_it() -> None:
    ttl = {"refresh_on_read": True, "default_ttl": 1440, "sweep_interval_minutes": 60}
    assert ttl_config(ttl) == ttl
    assert ttl_config(None) is None
    for bad, named in (({"default_ttl": -1}, "default_ttl"), ({"refresh": True}, "refresh"), ([], "store.ttl")):
        with pytest.raises(ConfigError, match=named):
            ttl_config(bad)
