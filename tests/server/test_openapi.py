"""The OpenAPI document a client reads at ``/openapi.json`` says what every operation does."""

from __future__ import annotations

import httpx
import pytest

from loom.processes import LoomServer

pytestmark = pytest.mark.live
METHODS = {"get", "put", "post", "delete", "patch"}


def test_every_operation_has_a_description(server: LoomServer) -> None:
    """Each endpoint's docstring is its operation's description: what it does, what it answers, its statuses."""
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    operations = [(method, path, operation) for path, item in document["paths"].items()
                  for method, operation in item.items() if method in METHODS]  # fmt: skip
    assert len(operations) > 50
    undescribed = [f"{method.upper()} {path}" for method, path, op in operations if not op.get("description")]
    assert not undescribed, "no description: " + ", ".join(undescribed)
