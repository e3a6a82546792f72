"""Reflection with external feedback (seed 001): the sandbox, not the model, says whether the code works.

The tests are frozen after the first generation (or come from the caller), so a fix can only change
the solution, never weaken the tests. Each run's traceback and test failures go back to the model.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.types import Command
from pydantic import BaseModel

from loom.settings import get_settings
from nodes.models import ModelProvider, model_for
from nodes.models.outputs import ask_structured
from services.sandbox.runner import SandboxResult, arun_python
from state.code_reflection import CodeAttempt, CodeDraft, CodeFix, CodeState

OUTPUT_TAIL = 3000
HARNESS = """import sys, traceback
sys.path.insert(0, ".")
import test_solution
tests = [(n, f) for n, f in vars(test_solution).items() if n.startswith("test_") and callable(f)]
failed = 0
for name, test in tests:
    try:
        test()
        print(f"PASS {name}")
    except Exception:
        failed += 1
        print(f"FAIL {name}")
        traceback.print_exc()
print(f"{len(tests) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
"""
_TALLY = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)

CODER_INSTRUCTIONS = (
    "You are a senior Python engineer. Write a complete, self-contained module that solves the task "
    "(standard library only, no input(), no network). Tests are plain test_* functions using assert."
)
FIX_INSTRUCTIONS = (
    "You are fixing Python code that failed when run against its tests. Read the error output, find the cause "
    "and return the complete corrected module. Do not change what the tests expect."
)


async def structured_call(
    models: ModelProvider, schema: type[BaseModel], system: str, prompt: str, node: str, config: RunnableConfig
) -> tuple[Any, list[Any]]:
    messages = [SystemMessage(content=system), HumanMessage(content=prompt)]
    reply = await ask_structured(await model_for(models, "coder"), schema, messages, node=node, config=config)
    return reply.value, reply.usages


def make_generate(models: ModelProvider) -> Any:
    async def generate(state: CodeState, config: RunnableConfig) -> dict[str, Any]:
        human = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
        given = state.get("tests", "").strip()
        prompt = f"Task: {human.text}" + (f"\n\nThe code must pass these tests:\n{given}" if given else "")
        draft, usage = await structured_call(models, CodeDraft, CODER_INSTRUCTIONS, prompt, "generate", config)
        draft = draft or CodeDraft(code="", tests="")
        return {
            "turn_id": human.id,
            "task": human.text,
            "code": draft.code,
            "test_code": given or draft.tests,
            "tests": "",  # consumed: the next turn brings its own
            "usage": usage,
        }

    return generate


def make_fix(models: ModelProvider) -> Any:
    async def fix(state: CodeState, config: RunnableConfig) -> dict[str, Any]:
        last = this_turn(state)[-1]
        prompt = (
            f"Task: {state['task']}\n\nCode:\n{state['code']}\n\nTests:\n{state['test_code']}\n\n"
            f"Running it gave:\n{last['output']}"
        )
        repair, usage = await structured_call(models, CodeFix, FIX_INSTRUCTIONS, prompt, "fix", config)
        get_stream_writer()(
            {"event": "code_fix", "attempt": last["attempt"] + 1, "diagnosis": getattr(repair, "diagnosis", "")}
        )
        return {"code": repair.code if repair else state["code"], "usage": usage}

    return fix


def this_turn(state: CodeState) -> list[CodeAttempt]:
    return [a for a in state.get("attempts", []) if a["turn_id"] == state["turn_id"]]


def attempt_record(state: CodeState, result: SandboxResult, number: int) -> CodeAttempt:
    tally = _TALLY.findall(result.stdout)
    passed, failed = (int(tally[-1][0]), int(tally[-1][1])) if tally else (0, 0)
    output = (
        f"exit code: {result.exit_code}\nstdout:\n{result.stdout[-OUTPUT_TAIL:]}\n"
        f"stderr:\n{result.stderr[-OUTPUT_TAIL:]}"
    )
    return CodeAttempt(
        turn_id=state["turn_id"],
        attempt=number,
        code=state["code"],
        ok=result.ok,
        tests_passed=passed,
        tests_failed=failed,
        exit_code=result.exit_code,
        killed_reason=result.killed_reason,
        output=output,
    )


async def run(state: CodeState) -> Command[Literal["fix", "finish"]]:
    """Run the code against the frozen tests in the sandbox; route on the real outcome."""
    files = {"solution.py": state["code"], "test_solution.py": f"from solution import *\n\n{state['test_code']}"}
    result = await arun_python(HARNESS, files=files)
    record = attempt_record(state, result, len(this_turn(state)) + 1)
    get_stream_writer()(
        {
            "event": "code_run",
            "attempt": record["attempt"],
            "ok": record["ok"],
            "passed": record["tests_passed"],
            "failed": record["tests_failed"],
        }
    )
    if record["ok"]:
        return Command(goto="finish", update={"attempts": [record], "finish_reason": "passed"})
    if record["attempt"] >= get_settings().code_max_attempts:
        return Command(goto="finish", update={"attempts": [record], "finish_reason": "attempt_limit"})
    return Command(goto="fix", update={"attempts": [record]})


def best_attempt(attempts: list[CodeAttempt]) -> CodeAttempt:
    """A passing run, else the one with most tests passed; on a tie the later one."""
    return max(attempts, key=lambda a: (a["ok"], a["tests_passed"], a["attempt"]))


def finish(state: CodeState) -> dict[str, Any]:
    attempts = this_turn(state)
    best = best_attempt(attempts)
    if state.get("finish_reason") == "passed":
        tested = f"all {best['tests_passed']} test(s) pass" if best["tests_passed"] else "it runs (there were no tests)"
        detail = f"{tested} after {len(attempts)} run(s)"
    else:
        detail = (
            f"still failing after {len(attempts)} run(s); kept run {best['attempt']} "
            f"({best['tests_passed']} test(s) passed)"
        )
    message = f"```python\n{best['code']}\n```\n\n{detail}.\n\nLast run:\n{attempts[-1]['output']}"
    return {"code": best["code"], "finish_detail": detail, "messages": [AIMessage(content=message)]}
