"""Custom evaluators: ``./file.py:function`` or ``module:function``, called once per run.

The function (plain or ``async``) takes keyword arguments ``inputs`` (the example's inputs), ``outputs``
(the final answer), ``state`` (the final state), ``reference_outputs`` (the example's ``expected``) and
``metadata``, and returns ``{"key", "score", "comment"}`` as openevals' evaluators do (or a list of them).
A score passes when it is ``True`` or a number ≥ 1; its check is named by ``key``, and a failure is blamed
on the node that wrote the final answer.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loom.checks import Finding, RunTrace, Verdict
from loom.datasets import Example

Evaluator = Callable[..., Any]


def load_evaluator(reference: str) -> Evaluator:
    """``./file.py:function`` (a path, relative to the working directory) or ``module:function``."""
    target, _, name = reference.rpartition(":")
    if not target or not name:
        raise ValueError(f"evaluator {reference!r}: write ./file.py:function or module:function")
    if target.endswith(".py"):
        path = Path(target).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"evaluator {reference!r}: no file {path}")
        spec = importlib.util.spec_from_file_location(f"loom_evaluator_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ValueError(f"evaluator {reference!r}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"evaluator {reference!r}: {target} has no function {name!r}")
    return function


async def apply(evaluators: list[Evaluator], example: Example, trace: RunTrace) -> dict[str, Finding]:
    """Every custom evaluator's results on one run, keyed by the results' ``key``."""
    arguments = {
        "inputs": example.inputs,
        "outputs": trace.answer(),
        "state": trace.final,
        "reference_outputs": example.expected.model_dump(exclude_none=True),
        "metadata": example.metadata,
    }
    findings: dict[str, Finding] = {}
    for evaluator in evaluators:
        if inspect.iscoroutinefunction(evaluator):
            returned = await evaluator(**arguments)
        else:  # a plain function may block (files, a model client): off the event loop
            returned = await asyncio.to_thread(evaluator, **arguments)
        for result in returned if isinstance(returned, list) else [returned]:
            key, finding = _finding(evaluator, result, trace)
            findings[key] = finding
    return findings


def _finding(evaluator: Evaluator, result: Any, trace: RunTrace) -> tuple[str, Finding]:
    name = getattr(evaluator, "__name__", "evaluator")
    if not isinstance(result, dict) or "key" not in result or "score" not in result:
        raise ValueError(f"evaluator {name} returned {result!r}: return {{key, score, comment}}")
    score = result["score"]
    passed = score is True or (isinstance(score, int | float) and not isinstance(score, bool) and score >= 1)
    verdict = Verdict(passed=passed, reason=str(result.get("comment") or f"score {score!r}"))
    return str(result["key"]), Finding(verdict) if passed else Finding(verdict, *trace.answered_by())
