"""Structured logs on a live server: JSON lines with run, thread, user and trace ids, and no key ever logged.

The provider stand-in answers as OpenAI does to a bad key, quoting the key in its error message, so the
run's failure carries the key into Loom's exception log: the log must show it blanked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.collectors import OtlpCollector, Recorder
from tests.fixtures.servers import serving

pytestmark = pytest.mark.live
OBS_GRAPHS = Path(__file__).parent / "langgraph.obs.json"
OPENAI_KEY = "sk-obs-provider-key-5f1e9a7c"
ALICE_KEY = "alice-api-key-8b2d4c6e"
BOB_KEY = "bob-api-key-3a9f0e1d"
OPENAI_REFUSAL = {
    "error": {
        "message": f"Incorrect API key provided: {OPENAI_KEY}. You can find your API key at platform.openai.com.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


def test_json_logs_carry_ids_and_never_a_key(tmp_path: Path) -> None:
    with (
        Recorder(status=401, answer=json.dumps(OPENAI_REFUSAL).encode()) as provider,
        OtlpCollector() as collector,
    ):
        env = {
            "LOOM_GRAPHS_CONFIG": str(OBS_GRAPHS),
            "LOOM_LOG_FORMAT": "json",
            "LOOM_API_KEYS": json.dumps({"alice": ALICE_KEY, "bob": BOB_KEY}),
            "LOOM_MODEL": "openai:gpt-4o-mini",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": f"{provider.url}/v1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        }
        with serving(tmp_path, False, **env) as server:
            refused = httpx.post(f"{server.url}/threads", json={}, headers={"Authorization": f"Bearer {OPENAI_KEY}"})
            assert refused.status_code == 401
            alice = {"x-api-key": ALICE_KEY}
            thread = httpx.post(f"{server.url}/threads", json={}, headers=alice).json()["thread_id"]
            body = {"assistant_id": "assistant", "input": {"messages": [{"role": "user", "content": "Write a poem"}]}}
            answer = httpx.post(f"{server.url}/threads/{thread}/runs/wait", json=body, headers=alice, timeout=60)
            assert answer.status_code == 200
            run = httpx.get(f"{server.url}/threads/{thread}/runs", headers=alice).json()[0]
            assert run["status"] == "error" and "Incorrect API key" in run["error"]["message"]
            assert OPENAI_KEY not in answer.text + json.dumps(run), "clients never see the server's key either"
        text = server.log.read_text()
    assert provider.posts, "the model call reached the provider, which refused the key"

    for secret in (OPENAI_KEY, ALICE_KEY, BOB_KEY):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is one JSON event
    failure = [line for line in lines if line.get("run_id") == run["run_id"] and line["level"] == "error"]
    assert failure, "the run's failure is logged with its ids"
    assert_ids(failure[0], run["run_id"], thread)
    assert "[redacted]" in failure[0]["exception"], "the provider quoted the key; the log blanked it"
    assert any(line["logger"] == "uvicorn.access" for line in lines), "uvicorn's own lines are JSON too"


def assert_ids(line: dict[str, Any], run_id: str, thread_id: str) -> None:
    assert line["thread_id"] == thread_id and line["user_id"] == "alice" and line["graph_id"] == "assistant"
    assert len(line["trace_id"]) == 32 and int(line["trace_id"], 16)
