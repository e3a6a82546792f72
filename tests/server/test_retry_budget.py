"""A run's transient-error retries share one budget; when it is spent the run ends in error."""

from __future__ import annotations

from pathlib import Path

from langgraph_sdk import get_client

from tests.fixtures.servers import new_server


async def test_spent_retry_budget_ends_the_run_with_a_structured_error(tmp_path: Path) -> None:
    server = new_server(tmp_path / "server", LOOM_RUN_RETRY_BUDGET="2").start()
    try:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        parts = [part async for part in client.runs.stream(thread["thread_id"], "flaky", input={"log": []})]
        attempts = (server.data_dir / "gates" / f"{thread['thread_id']}.attempts").read_text()
        after = await client.threads.get(thread["thread_id"])
        (run,) = await client.runs.list(thread["thread_id"])
    finally:
        server.stop()
    assert attempts == "3"  # the first try and the two retries the budget allowed
    error = next(p for p in parts if p.event == "error")
    assert error.data["error"] == "ProviderDown" and "503" in error.data["message"]
    assert parts[-1].event == "end" and parts[-1].data["status"] == "error"
    assert run["status"] == "error" and after["status"] == "error"
