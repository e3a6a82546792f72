"""Code reflection runs real code in the sandbox and fixes it from the real errors until the tests pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage

from graphs.code_reflection import build_graph
from tests.fixtures.env import SetEnv
from tests.fixtures.models import ScriptedModels

TESTS = "def test_mean():\n    assert mean([1, 2, 3]) == 2\n\n\ndef test_single():\n    assert mean([5]) == 5\n"
BUGGY = "def mean(xs):\n    return sum(xs) / (len(xs) - 1)\n"
FIXED = "def mean(xs):\n    return sum(xs) / len(xs)\n"
HALF = "def mean(xs):\n    return xs[0]\n"
BROKEN = "def mean(xs)\n    return 0\n"

SNAPSHOT = Path(__file__).parent / "snapshots" / "code_reflection.mmd"


def ask(text: str = "Write mean(xs), the arithmetic mean of a list", **extra: Any) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)], **extra}


def fix_prompts(models: ScriptedModels) -> list[str]:
    return [call[-1].text for call in models.models["coder"].calls[1:]]


def test_topology_matches_snapshot() -> None:
    drawing = build_graph().get_graph().draw_mermaid()
    assert drawing == SNAPSHOT.read_text(), "graph topology changed: update the snapshot if intended"


async def test_errors_from_the_sandbox_drive_the_fix(scripted: type[ScriptedModels]) -> None:
    models = scripted(coder=[{"code": BUGGY, "tests": TESTS}, {"diagnosis": "divides by n-1", "code": FIXED}])
    result = await build_graph(models).ainvoke(ask())
    assert [(a["ok"], a["tests_passed"], a["tests_failed"]) for a in result["attempts"]] == [
        (False, 0, 2),
        (True, 2, 0),
    ]
    [prompt] = fix_prompts(models)
    assert "ZeroDivisionError" in prompt and "FAIL test_mean" in prompt and BUGGY in prompt
    assert (result["finish_reason"], result["code"]) == ("passed", FIXED)
    assert "all 2 test(s) pass after 2 run(s)" in result["messages"][-1].content


async def test_a_syntax_error_is_fed_back(scripted: type[ScriptedModels]) -> None:
    models = scripted(coder=[{"code": BROKEN, "tests": TESTS}, {"code": FIXED}])
    result = await build_graph(models).ainvoke(ask())
    assert "SyntaxError" in fix_prompts(models)[0]
    assert result["finish_reason"] == "passed"


async def test_attempt_limit_keeps_the_best_version(scripted: type[ScriptedModels], set_env: SetEnv) -> None:
    set_env(LOOM_CODE_MAX_ATTEMPTS="3")
    models = scripted(coder=[{"code": BROKEN, "tests": TESTS}, {"code": HALF}, {"code": BUGGY}, {"code": FIXED}])
    result = await build_graph(models).ainvoke(ask())
    assert [a["tests_passed"] for a in result["attempts"]] == [0, 1, 0]
    assert (result["finish_reason"], result["code"]) == ("attempt_limit", HALF)
    assert "kept run 2" in result["finish_detail"]
    assert models.models["coder"].remaining == 1


async def test_caller_tests_are_used_and_never_replaced(scripted: type[ScriptedModels]) -> None:
    weak = "def test_nothing():\n    assert True\n"
    models = scripted(coder=[{"code": BUGGY, "tests": weak}, {"code": FIXED}])
    result = await build_graph(models).ainvoke(ask(tests=TESTS))
    assert result["test_code"] == TESTS.strip()
    assert "Tests:\n" + TESTS.strip() in fix_prompts(models)[0]
    assert [a["tests_passed"] for a in result["attempts"]] == [0, 2]


async def test_code_that_hangs_is_stopped_and_reported(scripted: type[ScriptedModels], set_env: SetEnv) -> None:
    set_env(LOOM_SANDBOX_TIMEOUT_S="1")
    hangs = "def mean(xs):\n    while True:\n        pass\n"
    models = scripted(coder=[{"code": hangs, "tests": TESTS}, {"code": FIXED}])
    result = await build_graph(models).ainvoke(ask())
    first = result["attempts"][0]
    assert (first["ok"], first["killed_reason"]) == (False, "timeout")
    assert result["finish_reason"] == "passed"
