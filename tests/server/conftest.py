"""Servers shared by the server test modules, built from ``tests.fixtures.servers``.

Every test works on its own threads, so sharing a process keeps tests independent while starting
one server instead of one per module. Modules that need other settings start their own (``serving``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from loom.processes import LoomServer, scratch_postgres_database
from tests.fixtures.servers import serving
from tests.server.live import ALICE, BOB, KEYS, MAX_BODY_BYTES


@pytest.fixture(scope="session")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("fixture-server"), LOOM_MAX_BODY_BYTES=str(MAX_BODY_BYTES)) as live:
        yield live


@pytest.fixture
def server(fixture_server: LoomServer) -> LoomServer:
    """The shared server; a module that needs other settings defines its own ``server``, which wins."""
    return fixture_server


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LoomServer]:
    """A fresh server of this test's own, on Loom's graphs (no fixture graphs)."""
    with serving(tmp_path / "server", fixtures=False) as live:
        yield live


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    """A shared server with API keys (``KEYS``), alice granted ``write``, and 1 s to send a head or a body."""
    env = {
        "LOOM_API_KEYS": json.dumps(KEYS),
        "LOOM_USER_PERMISSIONS": json.dumps({"alice": ["read", "write"]}),
        "LOOM_BODY_READ_TIMEOUT_S": "1",
        "LOOM_HEADER_READ_TIMEOUT_S": "1",
    }
    with serving(tmp_path_factory.mktemp("keyed"), **env) as live:
        yield live


@pytest.fixture
async def alice_http(keyed_server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``keyed_server`` as alice; after the test the server must still answer."""
    async with httpx.AsyncClient(base_url=keyed_server.url, headers=ALICE, timeout=60) as client:
        yield client
        assert (await client.get("/ok")).status_code == 200, "the server still answers"


@pytest.fixture
async def bob_http(keyed_server: LoomServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``keyed_server`` as bob, who must see none of alice's things."""
    async with httpx.AsyncClient(base_url=keyed_server.url, headers=BOB, timeout=60) as client:
        yield client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A test taking it runs on a SQLite file and again on a PostgreSQL database of its own (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'loom.sqlite'}"
        return
    with scratch_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url
