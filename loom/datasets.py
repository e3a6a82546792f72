"""Evaluation datasets: JSONL files, one example a line, each with the checks its run must pass (issue 25).

A line is ``{"id"?, "inputs", "expected"?, "rubric"?, "metadata"?}``. ``inputs`` is the graph's input
(an object) or a string, the user's message for a graph whose input has ``messages``. Every key of
``expected`` is its own check, and ``rubric`` holds binary criteria for a judge (seed 001: yes/no
criteria, never A-versus-B). An example without an ``id`` gets one made from its ``inputs``, so the
same request keeps its id when its expectations are corrected and experiments stay comparable.

:func:`names_problems` checks an example's node, tool and state names against a compiled graph, so a
renamed node fails a test at once instead of every run of an experiment later.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, Required, Union, get_args, get_origin, get_type_hints

from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import is_typeddict

MatchMode = Literal["subset", "strict", "unordered", "superset"]
"""How a run's nodes (or tools) are compared with the expected list, as agentevals names the modes:
``strict`` the same sequence; ``unordered`` the same items in any order; ``subset`` nothing beyond the
expected items ran (some may not have); ``superset`` every expected item ran (others may have too)."""

Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(min_length=1)]
STATE_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"
StatePath = Annotated[str, Field(pattern=STATE_PATH_PATTERN)]
"""A final-state key, dotted into nested values: ``triage.category``; list items by index: ``failures.0.tool``."""


class Expected(BaseModel):
    """The checks one run must pass; each key present is a separate verdict."""

    model_config = ConfigDict(extra="forbid", strict=True)

    state: dict[StatePath, JsonValue] | None = Field(default=None, description="Final-state path → value")
    nodes: list[Name] | None = Field(default=None, description="Nodes of the run, compared by nodes_mode")
    nodes_mode: MatchMode = "subset"
    tools: list[Name] | None = Field(default=None, description="Tools the model called, compared by tools_mode")
    tools_mode: MatchMode = "subset"
    contains: list[Text] | None = Field(default=None, description="Substrings of the final answer, any case")
    not_contains: list[Text] | None = Field(default=None, description="Substrings the final answer must lack")
    interrupt: bool | None = Field(default=None, description="True when the run must stop for a human's approval")
    max_steps: int | None = Field(default=None, gt=0, description="Graph steps (node runs) of the run")
    max_tokens: int | None = Field(default=None, gt=0, description="Input plus output tokens of the run")
    max_cost_usd: float | None = Field(default=None, gt=0, description="USD, by the price table")
    max_latency_ms: float | None = Field(default=None, gt=0, description="Wall-clock time of the run")

    @model_validator(mode="after")
    def _modes_need_lists(self) -> Expected:
        for items in ("nodes", "tools"):
            if f"{items}_mode" in self.model_fields_set and getattr(self, items) is None:
                raise PydanticCustomError("mode_without_list", f"{items}_mode is given without {items}")
        return self


class Example(BaseModel):
    """One dataset line: what to send the graph and how to judge the run."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    inputs: str | dict[str, JsonValue]
    expected: Expected = Field(default_factory=Expected)
    rubric: list[Text] = Field(default_factory=list, description="Binary criteria, each judged 0 or 1")
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" not in data and "inputs" in data:
            return {**data, "id": example_id(data["inputs"])}
        return data

    @field_validator("inputs", mode="wrap")
    @classmethod
    def _inputs(cls, value: Any, handler: Any) -> Any:
        if (isinstance(value, str) and value.strip()) or (isinstance(value, dict) and value):
            return handler(value)
        raise PydanticCustomError("inputs", "must be the user's message (a non-empty string) or the graph's input")


def example_id(inputs: Any) -> str:
    """A stable id for an example without one: a hash of its ``inputs`` (keys sorted)."""
    canonical = json.dumps(inputs, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "ex-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


class DatasetError(ValueError):
    """A dataset file with bad lines; ``problems`` holds one ``file:line: field: message`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_dataset(path: Path) -> list[Example]:
    """Read and validate a JSONL dataset; blank lines are skipped. Raises ``DatasetError`` naming every bad line."""
    lines = enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
    return parse_examples(((f"{path}:{number}", line) for number, line in lines), str(path))


def parse_examples(
    lines: Iterable[tuple[str, str]], source: str, join: Callable[[str, str], str] = "{}: {}".format
) -> list[Example]:
    """Validate JSON lines, each ``(where, line)``; blank lines are skipped. Raises ``DatasetError`` whose
    problems are ``join(where, field)`` and the message: ``data.jsonl:3: inputs: …`` for a file by default,
    ``examples.2.inputs: …`` with ``join="{}.{}".format`` for an HTTP body."""
    examples: list[Example] = []
    problems: list[str] = []
    first: dict[str, str] = {}
    for where, line in lines:
        if not line.strip():
            continue
        example, errors = _parse_line(line)
        problems += [f"{join(where, field)}: {message}" for field, message in errors]
        if example is None:
            continue
        if example.id in first:
            problems.append(f"{join(where, 'id')}: duplicate id {example.id!r} (first at {first[example.id]})")
        first.setdefault(example.id, where)
        examples.append(example)
    if not examples and not problems:
        problems.append(f"{source}: the dataset has no examples")
    if problems:
        raise DatasetError(problems)
    return examples


def _parse_line(line: str) -> tuple[Example | None, list[tuple[str, str]]]:
    try:
        data = json.loads(line, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        return None, [("json", f"{exc.msg} at column {exc.colno}")]
    except ValueError as exc:
        return None, [("json", str(exc))]
    if not isinstance(data, dict):
        return None, [("json", f"an example is one JSON object, not {type(data).__name__}")]
    try:
        return Example.model_validate(data), []
    except ValidationError as exc:
        return None, [(_field(error["loc"]), error["msg"]) for error in exc.errors()]


def _refuse_constant(name: str) -> Any:
    """Strict JSON, as the server's edge takes it: NaN and Infinity cannot be stored and sent back."""
    raise ValueError(f"{name} is not JSON")


def _field(loc: tuple[int | str, ...]) -> str:
    """``expected.nodes.2``, without the union-member tags pydantic adds (``str``, ``dict[str,...]``)."""
    parts = [str(part) for part in loc if not (isinstance(part, str) and ("[" in part or part in _TAGS))]
    return ".".join(parts) or "line"


_TAGS = {"str", "int", "float", "bool", "list", "dict"}
_STATE_PATH = re.compile(STATE_PATH_PATTERN)


EXPECTED_TEXT_MAX = 200
"""Longer strings of a final state are left out of the expectations made from it (answers, documents)."""


def state_expectations(values: Any, prefix: str = "") -> dict[str, JsonValue]:
    """``expected.state`` made from a run's final values, for a person to correct: every bool, number and
    string of at most ``EXPECTED_TEXT_MAX`` characters, nested objects as dotted paths (``triage.category``);
    lists (messages, logs), empty values and keys a path cannot name are left out."""
    found: dict[str, JsonValue] = {}
    for key, value in values.items() if isinstance(values, Mapping) else ():
        path = f"{prefix}{key}"
        if not isinstance(key, str) or not _STATE_PATH.fullmatch(path):
            continue
        if isinstance(value, Mapping):
            found |= state_expectations(value, f"{path}.")
        elif _expectable(value):
            found[path] = value
    return found


def _expectable(value: Any) -> bool:
    if isinstance(value, str):
        return 0 < len(value) <= EXPECTED_TEXT_MAX
    return isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value))


@dataclass(frozen=True)
class GraphNames:
    """What an example may name in one graph: its nodes, the tools its model can call, its state type."""

    nodes: frozenset[str]
    tools: frozenset[str]
    state: Any


def graph_names(graph: CompiledStateGraph[Any, Any, Any, Any], extra_tools: Iterable[str] = ()) -> GraphNames:
    """Introspect a compiled graph: its nodes, the tools of its tool nodes (subgraphs included), its state schema.

    ``extra_tools`` adds tools a node calls without a ``ToolNode`` (plan_execute's step runner).
    """
    nodes = frozenset(name for name in graph.get_graph().nodes if not name.startswith("__"))
    return GraphNames(nodes, frozenset(_tools_of(graph)) | frozenset(extra_tools), graph.builder.state_schema)


def _tools_of(graph: CompiledStateGraph[Any, Any, Any, Any]) -> set[str]:
    found: set[str] = set()
    for node in graph.nodes.values():
        bound = node.bound
        if isinstance(bound, ToolNode):
            found |= set(bound.tools_by_name)
        elif isinstance(bound, CompiledStateGraph):
            found |= _tools_of(bound)
    return found


def names_problems(example: Example, names: GraphNames) -> list[str]:
    """Every node, tool, state path or state value of ``example.expected`` that the graph does not have."""
    expected = example.expected
    problems = [f"expected.nodes: no node {n!r}" for n in expected.nodes or [] if n not in names.nodes]
    problems += [f"expected.tools: no tool {t!r}" for t in expected.tools or [] if t not in names.tools]
    for path, value in (expected.state or {}).items():
        leaf = state_type(names.state, path.split("."))
        if leaf is _MISSING:
            problems.append(f"expected.state: no state path {path!r}")
        elif not _fits(leaf, value):
            problems.append(f"expected.state: {path} is never {value!r} (allowed: {_allowed(leaf)})")
    return problems


_MISSING = object()


def state_type(schema: Any, parts: Sequence[str]) -> Any:
    """The declared type at a dotted path of a state schema, or ``_MISSING`` when no such path exists."""
    schema = _unwrap(schema)
    if not parts or schema is Any:
        return schema
    head, rest = parts[0], parts[1:]
    if is_typeddict(schema):
        hints = get_type_hints(schema, include_extras=True)
        return state_type(hints[head], rest) if head in hints else _MISSING
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        field = schema.model_fields.get(head)
        return state_type(field.annotation, rest) if field else _MISSING
    origin, args = get_origin(schema), get_args(schema)
    if origin in (list, tuple, Sequence) and head.isdigit():
        return state_type(args[0] if args else Any, rest)
    if origin in (dict, Mapping):
        return state_type(args[1] if args else Any, rest)
    if origin in (Union, types.UnionType):
        found = (state_type(a, parts) for a in args if a is not type(None))
        return next((t for t in found if t is not _MISSING), _MISSING)
    return _MISSING


def _unwrap(schema: Any) -> Any:
    while get_origin(schema) in (Annotated, NotRequired, Required):
        schema = get_args(schema)[0]
    return schema


def _literals(leaf: Any) -> set[Any] | None:
    """The values a Literal (or a union of Literals and None) allows; None when the type is not closed."""
    leaf = _unwrap(leaf)
    if get_origin(leaf) is Literal:
        return set(get_args(leaf))
    if get_origin(leaf) not in (Union, types.UnionType):
        return None
    allowed: set[Any] = set()
    for member in get_args(leaf):
        values = {None} if member is type(None) else _literals(member)
        if values is None:
            return None
        allowed |= values
    return allowed


def _fits(leaf: Any, value: Any) -> bool:
    allowed = _literals(leaf)
    return allowed is None or value in allowed


def _allowed(leaf: Any) -> str:
    return ", ".join(sorted(repr(v) for v in _literals(leaf) or ()))
