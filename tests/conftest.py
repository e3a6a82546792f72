"""Shared fixtures: an isolated data dir per test, scripted fake models, databases, live servers.

Every test runs with ``LOOM_MODEL=fake:echo`` and an OpenAI base URL that points at a closed
port, so no test can reach a network model even if a key is present in the environment.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from loom.persistence import open_checkpointer
from loom.processes import PROJECT_ROOT, LoomServer
from loom.settings import Settings, get_settings
from nodes.models import ModelProvider
from nodes.models.fake import FakeChatModel
from server.blocking import blocking_detection
from tests.openai_server import ScriptedOpenAI

POSTGRES_URL = os.environ.get("LOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LOOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_NETWORK_ENV = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "LOOM_OPENAI_API_KEY", "LOOM_MODEL")
_NETWORK_ENV += ("TAVILY_API_KEY", "LOOM_TAVILY_API_KEY", "LOOM_KNOWLEDGE_DIR")


@pytest.fixture(autouse=True)
def loom_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name in _NETWORK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOOM_MODEL", "fake:echo")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LOOM_DETECT_BLOCKING", "true")  # servers started by tests fail runs that block
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[None]:
    """A blocking call made from Loom's code on a running event loop fails the test (``BlockingError``)."""
    with blocking_detection(enabled=True):
        yield


class SetEnv(Protocol):
    def __call__(self, **values: str) -> None: ...


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> SetEnv:
    """``set_env(LOOM_X="1")`` sets variables for this test and clears the cached settings, so they apply."""

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    return set_


class ScriptedModels:
    """A model provider with one fake model per role; unscripted roles echo."""

    def __init__(self, **scripts: list[Any]) -> None:
        self.models: dict[str, FakeChatModel] = {
            role: FakeChatModel(replies=replies) for role, replies in scripts.items()
        }

    def __call__(self, role: str) -> BaseChatModel:
        return self.models.setdefault(role, FakeChatModel())


@pytest.fixture
def scripted() -> type[ScriptedModels]:
    """``scripted(router=[...], workspace_agent=[...])`` builds a ``ModelProvider``."""
    return ScriptedModels


@pytest.fixture
async def checkpointer(loom_env: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """The default SQLite checkpointer, in this test's data dir."""
    async with open_checkpointer(loom_env) as saver:
        yield saver


def postgres_available(url: str = POSTGRES_URL, default_port: int = 5432) -> bool:
    host_port = url.split("://", 1)[-1].split("@", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or default_port)), timeout=2):
            return True
    except OSError:
        return False


def require(name: str, url: str, default_port: int) -> str:
    """``url`` if the server answers; else skip, except under CI where a missing server fails the test."""
    if not postgres_available(url, default_port):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} at {url} is required under CI=true")
        pytest.skip(f"{name} not reachable at {url}")
    return url


def require_postgres() -> str:
    return require("PostgreSQL", POSTGRES_URL, 5432)


def require_redis() -> str:
    return require("Redis", REDIS_URL, 6379)


@pytest.fixture
def postgres_url() -> str:
    """The test PostgreSQL URL; skipped when unreachable, except under CI where that fails."""
    return require_postgres()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """``postgres_url`` with a fresh schema as its ``search_path``, dropped afterwards, so a store's tables are
    created there and tests never touch real tables. Dispose the store's engine before this ends."""
    schema = f"loom_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield (
            make_url(postgres_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """The test Redis URL (``LOOM_TEST_REDIS_URL``); skipped when unreachable, except under CI."""
    return require_redis()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LoomServer]:
    """A fresh Loom server with its own data dir, on the fake model."""
    server = LoomServer(tmp_path / "server").start()
    yield server
    server.stop()


__all__ = ["ModelProvider", "ScriptedModels", "postgres_available"]


TEST_GRAPHS = PROJECT_ROOT / "tests" / "server" / "langgraph.test.json"


@pytest.fixture
def test_server(tmp_path: Path) -> Iterator[LoomServer]:
    """A live server that also serves the fixture graphs (gated, approval, failing)."""
    server = LoomServer(tmp_path / "server", {"LOOM_GRAPHS_CONFIG": str(TEST_GRAPHS)}).start()
    yield server
    server.stop()


@pytest.fixture
def openai_server(loom_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    """A scripted OpenAI-compatible server, and settings that send every role to it through langchain-openai.

    ``openai_server.add(...)`` scripts the replies; requests OpenAI would refuse get OpenAI's 400.
    """
    server = ScriptedOpenAI().start()
    monkeypatch.setenv("LOOM_MODEL", "openai:gpt-4o-mini")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-scripted-test-key")
    get_settings.cache_clear()
    try:
        yield server
    finally:
        server.stop()
        get_settings.cache_clear()
