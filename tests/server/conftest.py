"""One live server with the fixture graphs (gated, approval, failing), shared by the server test modules.

Every test works on its own threads, so sharing a process keeps tests independent while starting
one server instead of one per module. Modules that need other settings start their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loom.processes import LoomServer, scratch_postgres_database
from tests.server.live import MAX_BODY_BYTES, serving


@pytest.fixture(scope="session")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("fixture-server"), LOOM_MAX_BODY_BYTES=str(MAX_BODY_BYTES)) as live:
        yield live


@pytest.fixture
def server(fixture_server: LoomServer) -> LoomServer:
    """The shared server; a module that needs other settings defines its own ``server``, which wins."""
    return fixture_server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A test taking it runs on a SQLite file and again on a PostgreSQL database of its own (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'loom.sqlite'}"
        return
    with scratch_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url
