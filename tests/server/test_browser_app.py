"""A real page on ``useStream`` (``@langchain/langgraph-sdk`` from npm) in headless Chromium, talking to Loom.

``tests/browser/`` holds the page (React, bundled by esbuild from its committed ``package-lock.json``) and
``drive.mjs``, which serves the page on its own port, so every call to Loom is a cross-origin one, and drives
it with ``playwright-core`` on Debian's ``chromium``: send, the streamed reply, a follow-up, the thread list
(threads searched by ``graph_id`` metadata, as Agent Chat UI does), an approval interrupt in LangChain's
human-in-the-loop shape approved in one thread and rejected in another, a reload that reopens the thread,
and reopening another from the list. The model is the scripted OpenAI-compatible server.

``docs.mjs`` opens Loom's ``/docs`` and ``/redoc`` with every request that leaves 127.0.0.1 blocked and
recorded: both draw from files the server ships (fastapi-offline's Swagger UI and ReDoc), so they work offline.

Skipped when node, npm or chromium is missing, except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from loom.processes import PROJECT_ROOT, LoomServer
from tests.fixtures.openai_server import Body, Reply, ScriptedOpenAI, call, schema_named, text
from tests.fixtures.servers import serving

pytestmark = pytest.mark.live

PAGE = PROJECT_ROOT / "tests" / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
DRIVE_TIMEOUT_S = 120
TRIAGE = {"priority": "low", "reasoning": "a plain question"}


def require_browser_tools() -> None:
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    missing += [] if CHROMIUM.exists() else [f"chromium at {CHROMIUM} (apt-get install chromium)"]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test needs {', '.join(missing)} under CI=true")
        pytest.skip(f"the browser test needs {', '.join(missing)}")


def newer(target: Path, *sources: Path) -> bool:
    return target.exists() and target.stat().st_mtime >= max(source.stat().st_mtime for source in sources)


@pytest.fixture(scope="module")
def page() -> Path:
    """The built page: ``npm ci`` when the lock file changed, ``npm run build`` when a source did."""
    require_browser_tools()
    lock = PAGE / "package-lock.json"
    if not newer(PAGE / "node_modules" / ".package-lock.json", lock):
        npm("ci", "--no-audit", "--no-fund")
    if not newer(PAGE / "dist" / "app.js", lock, *(PAGE / "src").iterdir()):
        npm("run", "build")
    return PAGE


def npm(*args: str) -> None:
    done = subprocess.run(["npm", *args], cwd=PAGE, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stderr[-4000:]}"


def last_user_says(words: str) -> Callable[[Body], bool]:
    def says(body: Body) -> bool:
        asked = [m for m in body["messages"] if m["role"] == "user"]
        return bool(asked) and words in json.dumps(asked[-1]["content"])

    return says


def refund_called(body: Body) -> bool:
    return any(c["function"]["name"] == "issue_refund" for m in body["messages"] for c in m.get("tool_calls") or [])


def refund_thread(words: str, invoice: str, answer: str) -> list[Reply]:
    """Billing: ask to refund ``invoice`` (which stops for approval), then answer once the tool has answered."""
    asked = last_user_says(words)
    return [
        call(
            "issue_refund", {"invoice_id": invoice, "reason": words}, when=lambda b: asked(b) and not refund_called(b)
        ),
        text(answer, when=lambda b: asked(b) and refund_called(b)),
    ]


def triage(messages: list[dict[str, Any]]) -> str:
    category = "billing" if "refund" in json.dumps([m for m in messages if m["role"] == "user"][-1]) else "general"
    return json.dumps({**TRIAGE, "category": category, "suggested_agent": category})


@pytest.fixture
def loom(openai_server: ScriptedOpenAI, tmp_path: Path) -> Iterator[LoomServer]:
    openai_server.add(
        Reply(content=triage, when=schema_named("TriageDecision"), repeat=True),
        text("Hello! Happy to help with your question.", when=last_user_says("quick question")),
        text("We answer around the clock, every day.", when=last_user_says("opening hours")),
        *refund_thread("double charge", "INV-1002", "Refunded INV-1002 in full."),
        *refund_thread("changed my mind", "INV-1001", "Understood, no refund was made."),
        *refund_thread("wrong seat count", "INV-1001", "Refunded part of INV-1001."),
    )
    only_support = str(PAGE / "langgraph.json")  # one graph starts faster than Loom's six
    with serving(tmp_path / "loom", fixtures=False, LOOM_GRAPHS_CONFIG=only_support, **openai_server.env) as server:
        yield server


async def drive(page: Path, loom_url: str, script: str = "drive.mjs") -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node", str(page / script), loom_url, cwd=page, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(DRIVE_TIMEOUT_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:  # timed out: Chromium ends with its driver (its pipe closes)
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()[-4000:]
    seen: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return seen


def tool_results(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [m for m in state["values"]["messages"] if m["type"] == "tool" and m["name"] == name]


async def test_a_use_stream_page_chats_lists_reopens_and_answers_approvals(
    page: Path, loom: LoomServer, openai_server: ScriptedOpenAI
) -> None:
    seen = await drive(page, loom.url)
    print("browser steps (ms):", {step["name"]: step["ms"] for step in seen["steps"]})  # shown with pytest -s
    assert seen["problems"] == [], "no CORS refusal, failed request or script error in the page"
    assert seen["first_stream_message_events"] > 3, "the reply reached the browser token by token"
    said = [(kind, words) for kind, words in seen["chat_messages"] if kind in ("human", "ai")]
    assert said == [
        ("human", "Hello there, quick question"),
        ("ai", "Hello! Happy to help with your question."),
        ("human", "And what are your opening hours?"),
        ("ai", "We answer around the clock, every day."),
    ]
    assert seen["reopened_messages"] == seen["chat_messages"], "reopened after a reload, the thread is the same"

    client = get_client(url=loom.url)
    runs = {name: await client.runs.list(seen[name]) for name in ("chat", "approved", "rejected")}
    assert {name: [r["status"] for r in reversed(found)] for name, found in runs.items()} == {
        "chat": ["success", "success"],
        "approved": ["interrupted", "success"],
        "rejected": ["interrupted", "success"],
    }
    approved = await client.threads.get_state(seen["approved"])
    rejected = await client.threads.get_state(seen["rejected"])
    for state in (approved, rejected):
        assert state["next"] == [] and not any(task["interrupts"] for task in state["tasks"])
    (refund,) = tool_results(approved, "issue_refund")
    assert refund["status"] != "error" and json.loads(refund["content"])["amount"] == "49.00 USD"
    (refusal,) = tool_results(rejected, "issue_refund")
    assert refusal["status"] == "error" and "outside the refund window" in refusal["content"]
    assert rejected["values"]["approvals"][refusal["tool_call_id"]]["decision"] == "reject"
    await an_edit_through_the_python_sdk(client)
    assert not openai_server.unused and not openai_server.rejected


async def an_edit_through_the_python_sdk(client: Any) -> None:
    """The same request answered over HTTP: a wrong answer fails its run and leaves the interrupt open; an edit runs."""
    thread_id = (await client.threads.create())["thread_id"]
    ask = {"messages": [{"role": "user", "content": "Please refund part of INV-1001, wrong seat count"}]}
    await client.runs.wait(thread_id, "support", input=ask)
    (interrupt,) = (await client.threads.get_state(thread_id))["interrupts"]
    assert [action["name"] for action in interrupt["value"]["action_requests"]] == ["issue_refund"]
    two = {"decisions": [{"type": "approve"}, {"type": "approve"}]}
    failed = await client.runs.create(thread_id, "support", command={"resume": two})
    await client.runs.join(thread_id, failed["run_id"])
    assert (await client.runs.get(thread_id, failed["run_id"]))["status"] == "error"
    assert len((await client.threads.get_state(thread_id))["interrupts"]) == 1
    edited = {"invoice_id": "INV-1001", "reason": "wrong seat count", "amount_cents": 1000}
    edit = {"type": "edit", "edited_action": {"name": "issue_refund", "args": edited}}
    resume = {"resume": {"decisions": [edit]}}  # with an empty input beside it, as Agent Chat UI sends it
    state = await client.runs.wait(thread_id, "support", input={}, command=resume)
    (refund,) = [m for m in state["messages"] if m["type"] == "tool" and m["name"] == "issue_refund"]
    assert "edited the arguments" in refund["content"] and "10.00 USD" in refund["content"]


async def test_docs_and_redoc_render_with_nothing_fetched_from_outside(page: Path, tmp_path: Path) -> None:
    only_support = str(PAGE / "langgraph.json")
    with serving(tmp_path / "loom", fixtures=False, LOOM_GRAPHS_CONFIG=only_support) as server:
        seen = await drive(page, server.url, "docs.mjs")
    assert seen["outside"] == [], "no request for another host reached the network"
    assert sorted(seen["attempted"]) == sorted(seen["refused"]), "what the pages tried, their policy refused"
    assert seen["problems"] == []
    assert seen["swagger"]["title"] == "Loom - Swagger UI"
    assert {"/threads", "/threads/{thread_id}/runs/stream", "/runs/wait"} <= set(seen["swagger"]["paths"])
    assert seen["redoc"]["title"] == "Loom - ReDoc" and len(seen["redoc"]["operations"]) > 20
