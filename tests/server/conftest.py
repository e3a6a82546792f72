"""One live server with the fixture graphs (gated, approval, failing), shared by the server test modules.

Every test works on its own threads, so sharing a process keeps tests independent while starting
one server instead of one per module. Modules that need other settings start their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loom.processes import LoomServer
from tests.server.live import MAX_BODY_BYTES, serving


@pytest.fixture(scope="session")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    with serving(tmp_path_factory.mktemp("fixture-server"), LOOM_MAX_BODY_BYTES=str(MAX_BODY_BYTES)) as live:
        yield live
