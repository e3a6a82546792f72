"""What browser clients (the JS SDK's useStream, Agent Chat UI) need: CORS, private-network preflights,
a Content-Location naming the run, and threads stamped so a UI can list a graph's threads."""

from __future__ import annotations

import httpx
from langgraph_sdk import get_client

from loom.processes import LoomServer

ORIGIN = "http://localhost:3000"


async def test_a_preflight_from_another_origin_is_allowed(fixture_server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=fixture_server.url) as http:
        answer = await http.options(
            "/threads",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-api-key",
                "Access-Control-Request-Private-Network": "true",
            },
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] in ("*", ORIGIN)
        assert answer.headers["access-control-allow-private-network"] == "true"
        created = await http.post("/threads", json={}, headers={"Origin": ORIGIN})
        assert created.headers["access-control-allow-origin"] in ("*", ORIGIN)


async def test_a_streamed_run_names_itself_and_stamps_its_thread(fixture_server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=fixture_server.url, timeout=60) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "assistant", "input": {"messages": [{"role": "user", "content": "Write a haiku"}]}}
        async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body, headers={"Origin": ORIGIN}) as r:
            assert "content-location" in r.headers["access-control-expose-headers"].lower()
            run_path = r.headers["content-location"]
            async for _ in r.aiter_bytes():
                pass
    assert run_path.startswith(f"/threads/{thread_id}/runs/") and not run_path.endswith("/stream")
    client = get_client(url=fixture_server.url)
    found = await client.threads.search(metadata={"graph_id": "assistant"})
    assert thread_id in {thread["thread_id"] for thread in found}
