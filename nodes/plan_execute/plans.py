"""Plan logic without a graph: validation, ``$ref`` resolution and DAG readiness (seeds 001 and 003).

Everything here is pure, so each rule is tested directly: a plan is checked for unknown tools,
argument types (against each tool's schema), missing or cyclic dependencies, its size and the run's
permissions before anything runs, and every error names the step and what would be valid.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from nodes.common.permissions import permission_of
from nodes.common.toolsets import args_schema
from state.common import RunContext
from state.plan_execute import PlanStep, StepSpec

REF = "$ref"
REF_ALIAS = "ref"
"""Accepted like ``$ref``: llama.cpp's schema converter reserves ``$ref``, so the decoding schema offers ``ref``."""


class StepInputError(ValueError):
    """A step's arguments cannot be built (a reference to a missing field); retrying cannot help."""


@dataclass
class Validation:
    errors: list[str] = field(default_factory=list)
    ungranted: list[str] = field(default_factory=list)
    """Steps whose tool needs a permission this run lacks (a human may still approve them)."""
    risky: list[str] = field(default_factory=list)
    """Ids of steps that write or destroy, which need a human's approval before the plan runs."""


def step_key(step: StepSpec) -> str:
    """What a human approved: the step's id, tool and exact arguments (a changed step asks again)."""
    return f"{step['id']}:{step['tool']}:{json.dumps(step['arguments'], sort_keys=True, default=str)}"


def to_specs(steps: Sequence[PlanStep]) -> list[StepSpec]:
    return [StepSpec(**step.model_dump()) for step in steps]  # type: ignore[typeddict-item]


def as_ref(value: Any) -> str | None:
    """The reference in ``{"$ref": "step_1.field"}`` (or ``{"ref": …}``), else None."""
    if isinstance(value, dict) and len(value) == 1:
        key, target = next(iter(value.items()))
        if key in (REF, REF_ALIAS) and isinstance(target, str):
            return target
    return None


def refs_in(value: Any) -> list[str]:
    """Every reference inside an argument value."""
    if (ref := as_ref(value)) is not None:
        return [ref]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in refs_in(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in refs_in(item)]
    return []


def dependencies(step: StepSpec) -> list[str]:
    """Declared dependencies plus the steps its arguments reference."""
    referenced = [ref.split(".", 1)[0] for ref in refs_in(step["arguments"])]
    return list(dict.fromkeys([*step["depends_on"], *referenced]))


def resolve_refs(value: Any, outputs: Mapping[str, Any]) -> Any:
    """``value`` with each reference replaced by the referenced step's output (or a field of it)."""
    if (ref := as_ref(value)) is not None:
        return _lookup(ref, outputs)
    if isinstance(value, dict):
        return {key: resolve_refs(item, outputs) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_refs(item, outputs) for item in value]
    return value


def _lookup(ref: str, outputs: Mapping[str, Any]) -> Any:
    step, *path = ref.split(".")
    if step not in outputs:
        raise StepInputError(f"{ref!r}: step {step!r} has no result")
    current = outputs[step]
    for part in path:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            fields = ", ".join(current) if isinstance(current, dict) else type(current).__name__
            raise StepInputError(f"{ref!r}: no {part!r} in the result of {step} (it has: {fields})")
    return current


def validate_plan(
    plan: Sequence[StepSpec],
    tools: Mapping[str, BaseTool],
    context: RunContext,
    *,
    completed: Collection[str] = (),
    max_steps: int,
) -> Validation:
    """Check a plan before it runs; ``completed`` steps (kept from before a replan) are not re-checked."""
    result = Validation()
    ids = [step["id"] for step in plan]
    if not plan:
        result.errors.append("The plan has no steps.")
    new_steps = [step for step in plan if step["id"] not in completed]
    if len(new_steps) > max_steps:
        result.errors.append(f"The plan has {len(new_steps)} steps; the limit is {max_steps}. Merge or drop steps.")
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        result.errors.append(f"Step id {duplicate!r} is used more than once; give every step its own id.")
    for step in new_steps:
        result.errors += _dependency_errors(step, ids)
        tool = tools.get(step["tool"]) if step["tool"] else None
        if step["tool"] and tool is None:
            listing = "; ".join(signature(t) for t in tools.values())
            result.errors.append(f"{step['id']} uses unknown tool {step['tool']!r}. Valid tools: {listing}.")
        if tool is not None:
            result.errors += argument_errors(step, tool)
            _check_permission(step, tool, context, result)
    if cycle := find_cycle(plan):
        result.errors.append(f"Steps {' → '.join(cycle)} depend on each other in a cycle; a plan must be acyclic.")
    return result


def _dependency_errors(step: StepSpec, ids: Sequence[str]) -> list[str]:
    errors = []
    for dependency in dependencies(step):
        if dependency == step["id"]:
            errors.append(f"{step['id']} depends on itself.")
        elif dependency not in ids:
            errors.append(f"{step['id']} depends on {dependency!r}, which is not a step of this plan.")
    return errors


def _check_permission(step: StepSpec, tool: BaseTool, context: RunContext, result: Validation) -> None:
    level = permission_of(tool)
    if level == "read":
        return
    result.risky.append(step["id"])
    if level not in context.permissions:
        granted = ", ".join(context.permissions) or "none"
        result.ungranted.append(
            f"{step['id']} uses {tool.name}, which needs the {level!r} permission; this run has: {granted}."
        )


def argument_errors(step: StepSpec, tool: BaseTool) -> list[str]:
    """Type errors in the literal arguments; referenced ones are checked once resolved, at run time."""
    schema = _schema_model(tool)
    if schema is None:
        return []
    properties = schema.model_json_schema().get("properties", {})
    unknown = [name for name in step["arguments"] if name not in properties]
    errors = [f"{step['id']} passes unknown argument {name!r} to {signature(tool)}." for name in unknown]
    referenced = {name for name, value in step["arguments"].items() if refs_in(value)}
    literal = {name: value for name, value in step["arguments"].items() if name not in referenced}
    try:
        schema.model_validate(literal)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "arguments"
            if error["type"] == "missing" and name in referenced:
                continue
            where = ".".join(str(part) for part in error["loc"]) or "arguments"
            errors.append(f"{step['id']} argument {where!r}: {error['msg']}. Expected {signature(tool)}.")
    return errors


def _schema_model(tool: BaseTool) -> type[BaseModel] | None:
    schema = tool.tool_call_schema
    return schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None


def signature(tool: BaseTool) -> str:
    """``name(arg: type, optional?: type)``: how errors and prompts show a tool."""
    spec = args_schema(tool)
    required = set(spec.get("required", []))
    parts = [f"{n}{'' if n in required else '?'}: {_type_name(s)}" for n, s in spec.get("properties", {}).items()]
    return f"{tool.name}({', '.join(parts)})"


def _type_name(spec: dict[str, Any]) -> str:
    if spec.get("type") == "array":
        return f"list[{_type_name(spec.get('items', {}))}]"
    if "anyOf" in spec:
        return " | ".join(_type_name(s) for s in spec["anyOf"])
    return str(spec.get("type", "any"))


def find_cycle(plan: Sequence[StepSpec]) -> list[str] | None:
    """One dependency cycle as ``[a, b, …, a]``, or None; edges to unknown steps are ignored."""
    edges = {step["id"]: dependencies(step) for step in plan}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt in edges and nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for start in edges:
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def ready_steps(plan: Sequence[StepSpec], done: Collection[str], failed: Collection[str]) -> list[StepSpec]:
    """Steps not yet run whose dependencies have all completed: they can all start now."""
    return [
        step
        for step in plan
        if step["id"] not in done and step["id"] not in failed and all(d in done for d in dependencies(step))
    ]


def blocked_by(plan: Sequence[StepSpec], failed: Collection[str]) -> list[str]:
    """Steps that cannot run because they depend, directly or not, on a failed step."""
    blocked: set[str] = set(failed)
    changed = True
    while changed:
        changed = False
        for step in plan:
            if step["id"] not in blocked and any(d in blocked for d in dependencies(step)):
                blocked.add(step["id"])
                changed = True
    return [step["id"] for step in plan if step["id"] in blocked and step["id"] not in failed]


def plan_json_schema(tools: Mapping[str, BaseTool], max_steps: int) -> dict[str, Any]:
    """The schema constrained decoding follows, so even a 135M model cannot ramble out of a plan.

    One step shape per tool (its own argument names and types, each also accepting a ``$ref``), plus a
    reasoning step; ids and dependencies come from ``step_1`` … ``step_<max_steps>``; strings are capped.
    """
    ids = [f"step_{n}" for n in range(1, max_steps + 1)]
    shapes = [_step_schema(ids, {"const": name}, _arguments_schema(tool)) for name, tool in tools.items()]
    shapes.append(
        _step_schema(ids, {"type": "null"}, {"type": "object", "properties": {}, "additionalProperties": False})
    )
    steps = {"type": "array", "items": {"anyOf": shapes}, "minItems": 1, "maxItems": max_steps}
    return {
        "title": "Plan",
        "description": "The steps that answer the request, in dependency order.",
        "type": "object",
        "properties": {"steps": steps},
        "required": ["steps"],
        "additionalProperties": False,
    }


def _step_schema(ids: list[str], tool: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    properties = {
        "id": {"type": "string", "enum": ids},
        "description": {"type": "string", "maxLength": 100},
        "tool": tool,
        "arguments": arguments,
        "depends_on": {"type": "array", "items": {"type": "string", "enum": ids}, "maxItems": len(ids) - 1},
    }
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


MAX_LIST_ARGUMENT = 8
MAX_STRING_ARGUMENT = 64
"""A list argument's length in a constrained plan: enough for a step, short enough that a rambling
small model still closes the JSON within its token budget."""

_REF_SCHEMA = {
    "type": "object",
    "properties": {REF_ALIAS: {"type": "string", "maxLength": 40}},
    "required": [REF_ALIAS],
    "additionalProperties": False,
}


def _arguments_schema(tool: BaseTool) -> dict[str, Any]:
    spec = args_schema(tool)
    properties = {name: {"anyOf": [_capped(value), _REF_SCHEMA]} for name, value in spec.get("properties", {}).items()}
    required = [name for name in spec.get("required", []) if name in properties]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _capped(spec: dict[str, Any]) -> dict[str, Any]:
    """A tool parameter's schema, simplified for grammars; untyped parameters become strings or numbers.

    Lists and strings are capped, so a small model that repeats a digit cannot run a plan past its token
    budget (llama.cpp's grammar bounds a repetition as ``{0,N}``).
    """
    kind = spec.get("type")
    if kind == "string" and "enum" not in spec:
        return {"type": "string", "maxLength": MAX_STRING_ARGUMENT}
    if kind == "array":
        return {"type": "array", "items": _capped(spec.get("items", {})), "maxItems": MAX_LIST_ARGUMENT}
    if kind in ("integer", "number", "boolean") or "enum" in spec:
        return {key: value for key, value in spec.items() if key in ("type", "enum")}
    return {"anyOf": [{"type": "string"}, {"type": "number"}]}


def preview(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
