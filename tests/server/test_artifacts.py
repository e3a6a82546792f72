"""Artifacts cannot be reached across users, across colliding thread ids, or by path tricks."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from loom.processes import LoomServer
from tests.server.live import BOB, assert_error, thread_with_run

pytestmark = pytest.mark.live


async def test_colliding_thread_ids_do_not_share_artifacts(
    keyed_server: LoomServer, alice_http: httpx.AsyncClient
) -> None:
    tid = await thread_with_run(alice_http, "proj:1")
    state = (await alice_http.get(f"/threads/{tid}/state")).json()
    name = state["values"]["artifacts"][0]["url"].rsplit("/", 1)[1]
    assert (await alice_http.get(f"/threads/proj:1/artifacts/{name}")).status_code == 200
    async with httpx.AsyncClient(base_url=keyed_server.url, headers=BOB, timeout=60) as bob:
        assert (await bob.post("/threads", json={"thread_id": "proj_1"})).status_code == 200
        assert_error(await bob.get(f"/threads/proj_1/artifacts/{name}"), 404, "artifact_not_found")
        assert_error(await bob.get(f"/threads/proj:1/artifacts/{name}"), 404, "thread_not_found")
        # alice deletes her thread; bob takes the id: her files went with it and were never his
        assert (await alice_http.delete("/threads/proj:1")).status_code == 204
        assert (await bob.post("/threads", json={"thread_id": "proj:1"})).status_code == 200
        assert_error(await bob.get(f"/threads/proj:1/artifacts/{name}"), 404, "artifact_not_found")


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "%2e%2e",
        "..%2F..%2Floom.sqlite",
        "%2e%2e%2f%2e%2e%2floom.sqlite",
        "%2e%2e%5c%2e%2e%5cloom.sqlite",
        "%00",
        "chart.png%00.png",
        "%2Fetc%2Fpasswd",
        ".",
        "../../loom.sqlite",
        "/etc/passwd",
    ],
)
async def test_artifact_names_that_are_not_bare_file_names_are_404(
    keyed_server: LoomServer, alice_http: httpx.AsyncClient, name: str
) -> None:
    tid = await thread_with_run(alice_http)
    status, body = raw_get(keyed_server, f"/threads/{tid}/artifacts/{name}")
    assert status == 404, (name, status, body[:200])
    assert json.loads(body)["code"] in ("artifact_not_found", "not_found")


def raw_get(server: LoomServer, target: str) -> tuple[int, bytes]:
    """The request line exactly as given: HTTP clients remove ``..`` segments before sending, attackers do not."""
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ka\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
