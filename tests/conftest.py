"""Fixtures for every test, built from ``tests.fixtures`` (import helpers from there, never from a conftest).

Every test runs without the developer's settings (``tests.fixtures.env``), with ``LOOM_MODEL=fake:echo``
and an OpenAI base URL that points at a closed port, so no test can reach a network model.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver

from loom.persistence import open_checkpointer
from loom.processes import ServerProcess
from loom.settings import Settings, get_settings
from server.blocking import blocking_detection
from tests.fixtures.databases import require_postgres, require_redis, scratch_schema
from tests.fixtures.env import TEST_DEFAULTS, SetEnv, is_developers
from tests.fixtures.mcp_server import serving_mcp
from tests.fixtures.models import ScriptedModels
from tests.fixtures.openai_server import ScriptedOpenAI


@pytest.fixture(autouse=True)
def loom_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name in [name for name in os.environ if is_developers(name)]:
        monkeypatch.delenv(name)
    for name, value in {**TEST_DEFAULTS, "LOOM_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[None]:
    """A blocking call made from Loom's code on a running event loop fails the test (``BlockingError``)."""
    with blocking_detection(enabled=True):
        yield


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> SetEnv:
    """``set_env(LOOM_X="1")`` sets variables for this test and clears the cached settings, so they apply."""

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    return set_


@pytest.fixture
def scripted() -> type[ScriptedModels]:
    """``scripted(router=[...], workspace_agent=[...])`` builds a ``ModelProvider``."""
    return ScriptedModels


@pytest.fixture
async def checkpointer(loom_env: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """The default SQLite checkpointer, in this test's data dir."""
    async with open_checkpointer(loom_env) as saver:
        yield saver


@pytest.fixture
def postgres_url() -> str:
    """The test PostgreSQL URL; skipped when unreachable, except under CI where that fails."""
    return require_postgres()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """``postgres_url`` with a fresh schema as its ``search_path``, dropped afterwards, so a store's tables are
    created there and tests never touch real tables. Dispose the store's engine before this ends."""
    with scratch_schema(postgres_url) as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    """The test Redis URL (``LOOM_TEST_REDIS_URL``); skipped when unreachable, except under CI."""
    return require_redis()


@pytest.fixture
def openai_server(set_env: SetEnv) -> Iterator[ScriptedOpenAI]:
    """A scripted OpenAI-compatible server, and settings that send every role to it through langchain-openai.

    ``openai_server.add(...)`` scripts the replies; requests OpenAI would refuse get OpenAI's 400. A server
    a test starts gets the same settings from ``**openai_server.env``.
    """
    server = ScriptedOpenAI().start()
    set_env(**server.env)
    try:
        yield server
    finally:
        server.stop()
        get_settings.cache_clear()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """Where the test MCP server's delete_note writes what it deleted."""
    return tmp_path / "deleted.txt"


@pytest.fixture
def mcp_http_server(tmp_path: Path, journal: Path) -> Iterator[ServerProcess]:
    """The test MCP server (tests/fixtures/mcp_server.py) over Streamable HTTP, in a process of its own."""
    with serving_mcp(tmp_path, journal) as process:
        yield process
