"""A served graph's schemas: whatever LangGraph accepts is written and checked, and what pydantic cannot read is
left out with a warning, never an error (``server.graph_schemas``)."""

from __future__ import annotations

import logging
import sys
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Optional, TypedDict

import pytest
from langgraph.graph import START, StateGraph
from pydantic import ValidationError

from server.engine.context import validate_context
from server.graph_schemas import adapter, pydantic_ready, schemas_of


class Leaf(TypedDict):
    size: int


class Tree(TypedDict, total=False):
    name: typing.Required[str]
    leaves: list[Leaf]
    best: Optional[Leaf]  # noqa: UP045 (the spelling tutorials use)
    by_name: dict[str, Leaf | None]
    tagged: Annotated[Leaf, "a note"]


class Thing:
    """A class pydantic knows nothing of."""


class OddState(TypedDict):
    said: str
    thing: Thing


@dataclass
class OddContext:
    thing: Thing | None = None


def test_typing_typeddicts_nested_anywhere_are_read_as_their_project_wrote_them() -> None:
    checked = adapter(Tree)
    assert checked is not None
    tree = {"name": "oak", "leaves": [{"size": "3"}], "best": None, "by_name": {"a": {"size": 1}}}
    assert checked.validate_python(tree)["leaves"] == [{"size": 3}]
    with pytest.raises(ValidationError) as refused:
        checked.validate_python({"name": "oak", "by_name": {"a": {"size": "big"}}})
    assert refused.value.errors()[0]["loc"] == ("by_name", "a", "size")
    with pytest.raises(ValidationError):
        checked.validate_python({"leaves": []})  # name is required, the rest are not
    schema = checked.json_schema()
    assert schema["title"] == "Tree" and schema["required"] == ["name"] and "Leaf" in schema["$defs"]
    assert pydantic_ready(Leaf).__name__ == "Leaf" and pydantic_ready(int) is int


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="pydantic reads typing.TypedDict from Python 3.12 on")
def test_pydantic_alone_refuses_them_on_this_python() -> None:
    from pydantic import PydanticUserError, TypeAdapter

    with pytest.raises(PydanticUserError):
        TypeAdapter(Tree)


def test_what_pydantic_cannot_read_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    graph = StateGraph(OddState, context_schema=OddContext).add_node("n", lambda s: {}).add_edge(START, "n").compile()
    with caplog.at_level(logging.WARNING, logger="loom.server"):
        schemas = schemas_of("odd", graph)
    assert schemas["state_schema"]["properties"] == {"said": {"type": "string"}, "thing": {}}  # field by field
    assert schemas["input_schema"]["properties"]["thing"] == {}
    assert schemas["context_schema"] is None and schemas["config_schema"] is None
    assert "graph 'odd': its context schema cannot be written as JSON Schema" in caplog.text
    requested: dict[str, Any] = {"thing": None}
    assert validate_context(graph, requested) == requested  # unchecked, handed to LangGraph as it came
