"""``run_python``: seed 001's "planning with code" tool, executing in ``services.sandbox.runner``."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.tools import tool

from nodes.common.permissions import declare
from nodes.tools.errors import PermanentToolError
from services.sandbox.runner import arun_python

DATA_FILE = "data.json"


@tool
async def run_python(code: str, data: Any = None) -> dict[str, Any]:
    """Run Python 3 code (pandas available) in a sandbox: no network, a fresh empty folder, time and memory limits.

    Print the answer. `data`, if given (e.g. an earlier step's result), is saved as data.json for the code to read
    with json.load(open("data.json")). Returns stdout and the files the code wrote.
    """
    files = {DATA_FILE: json.dumps(data, default=str)} if data is not None else None
    result = await arun_python(code, files=files)
    if not result.ok:  # the same code fails the same way: let the planner rewrite it
        reason = result.killed_reason or f"exit code {result.exit_code}"
        raise PermanentToolError(f"the code failed ({reason}):\n{result.stderr[-2000:]}")
    return {"stdout": result.stdout, "files": result.files, "isolation": list(result.isolation)}


declare(run_python, "read")  # sandboxed: it can change nothing outside its own temporary folder
