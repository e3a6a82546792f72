"""Property-based fuzzing of every route in Loom's own OpenAPI document (issue 13).

schemathesis generates requests from ``/openapi.json`` (valid and invalid bodies, queries, path ids)
and sends them to a real server on the fake model. Every response must be a non-5xx that the document
describes (status, media type, body schema), and the server must still answer ``/ok`` afterwards.
New routes are covered without touching this file. Examples are bounded so the module fits CI
(about a minute on the 2-core machine, see the README).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loom.processes import LoomServer
from loom.settings import Settings
from server.app import create_app
from tests.fixtures.servers import serving

pytestmark = pytest.mark.live

EXAMPLES_PER_ROUTE = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    """The production graphs on the fake model, with a data dir of its own."""
    with serving(tmp_path_factory.mktemp("fuzz"), fixtures=False) as live:
        yield live


def openapi_document() -> dict[str, Any]:
    """The document the server serves at ``/openapi.json``, built without starting it.

    schemathesis needs the operations when pytest collects the tests, before any server runs (its
    fixture-based loader does not work with pytest 9); the last test checks the served one is the same.
    """
    return create_app(Settings(data_dir=Path("unused"))).openapi()


schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_ROUTE,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_route_answers_as_documented(fuzzed_server: LoomServer, case: schemathesis.Case) -> None:
    case.call_and_validate(base_url=fuzzed_server.url, checks=CHECKS, timeout=60)


def test_the_server_still_answers_after_fuzzing(fuzzed_server: LoomServer) -> None:
    assert httpx.get(f"{fuzzed_server.url}/ok", timeout=10).status_code == 200
    assert httpx.get(f"{fuzzed_server.url}/openapi.json", timeout=10).json() == openapi_document()
    log = Path(fuzzed_server.log).read_text(errors="replace")
    assert "Traceback" not in log.split("Application startup complete", 1)[-1], "no route raised"


def test_answers_on_a_real_thread_match_the_document(fuzzed_server: LoomServer) -> None:
    """Random ids mostly meet 404s; this walks one thread with a finished run through the documented routes."""
    message = {"messages": [{"role": "user", "content": "Create a chart from this data: Q1 120, Q2 150"}]}
    with httpx.Client(base_url=fuzzed_server.url, timeout=60) as http:

        def checked(method: str, template: str, path: str, **kwargs: Any) -> Any:
            response = http.request(method, path, **kwargs)
            assert response.status_code < 300, response.text
            schema[template][method].validate_response(response)
            return response.json() if response.headers.get("content-type") == "application/json" else None

        tid = checked("POST", "/threads", "/threads", json={"metadata": {"walk": True}})["thread_id"]
        run = checked(
            "POST",
            "/threads/{thread_id}/runs",
            f"/threads/{tid}/runs",
            json={"assistant_id": "assistant", "input": message},
        )
        checked("GET", "/threads/{thread_id}/runs/{run_id}/join", f"/threads/{tid}/runs/{run['run_id']}/join")
        checked("GET", "/threads/{thread_id}/runs/{run_id}", f"/threads/{tid}/runs/{run['run_id']}")
        checked("GET", "/threads/{thread_id}/runs", f"/threads/{tid}/runs")
        checked("GET", "/threads/{thread_id}", f"/threads/{tid}")
        state = checked("GET", "/threads/{thread_id}/state", f"/threads/{tid}/state")
        checkpoint_id = state["checkpoint"]["checkpoint_id"]
        checked("GET", "/threads/{thread_id}/state/{checkpoint_id}", f"/threads/{tid}/state/{checkpoint_id}")
        checked("POST", "/threads/{thread_id}/history", f"/threads/{tid}/history", json={"limit": 3})
        checked("POST", "/threads/{thread_id}/state", f"/threads/{tid}/state", json={"values": {"messages": []}})
        checked("POST", "/threads/search", "/threads/search", json={"metadata": {"walk": True}})
        name = state["values"]["artifacts"][0]["url"].rsplit("/", 1)[1]
        checked("GET", "/threads/{thread_id}/artifacts/{name}", f"/threads/{tid}/artifacts/{name}")
        checked("POST", "/assistants/search", "/assistants/search", json={})
        checked("PUT", "/store/items", "/store/items", json={"namespace": ["walk"], "key": "k", "value": {"n": 1}})
        checked("GET", "/store/items", "/store/items", params={"namespace": "walk", "key": "k"})
        checked("POST", "/store/items/search", "/store/items/search", json={"namespace_prefix": ["walk"]})
        checked("POST", "/store/namespaces", "/store/namespaces", json={})
        checked("POST", "/runs/stream", "/runs/stream", json={"assistant_id": "assistant", "input": message})
