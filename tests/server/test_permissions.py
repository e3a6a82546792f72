"""A user's permissions come from the server (``LOOM_USER_PERMISSIONS``); a request can only narrow them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from loom.processes import LoomServer
from tests.server.live import ALICE, BOB, assert_error

pytestmark = pytest.mark.live


async def granted(server: LoomServer, headers: dict[str, str], context: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {"assistant_id": "whoami", "input": {"request": "who"}}
    if context is not None:
        body["context"] = context
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        answer = await http.post("/runs/wait", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_permissions_come_from_the_server_and_the_request_only_narrows_them(keyed_server: LoomServer) -> None:
    assert (await granted(keyed_server, ALICE, None))["permissions"] == ["read", "write"]
    assert (await granted(keyed_server, ALICE, {"permissions": ["read"]}))["permissions"] == ["read"]
    assert (await granted(keyed_server, BOB, None))["permissions"] == ["read"]
    widened = await granted(keyed_server, BOB, {"permissions": ["read", "write", "destructive"], "user_id": "alice"})
    assert widened == {"request": "who", "user_id": "bob", "permissions": ["read"]}


async def test_malformed_permissions_in_the_context_are_422(alice_http: httpx.AsyncClient) -> None:
    for permissions in ("write", ["admin"], [1]):
        body = {"assistant_id": "whoami", "input": {"request": "x"}, "context": {"permissions": permissions}}
        answer = await alice_http.post("/runs/wait", json=body)
        assert "context.permissions" in assert_error(answer, 422, "invalid_context")["detail"]
