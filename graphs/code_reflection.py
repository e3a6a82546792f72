"""Code reflection (seed 001): generate code, run it in the sandbox, feed the errors back, fix, repeat.

    START → generate → run ─┬→ fix → run
                            └→ finish → END

The code variant of the pipeline's review loop, kept as its own graph because its state (code, frozen
tests, sandbox runs) and its feedback (real execution, not a judge) differ from the article pipeline's.
It stops when the tests pass or after ``code_max_attempts`` runs, keeping the best version.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from nodes.models import TRANSIENT_RETRY, ModelProvider, settings_models
from nodes.team.code_reflection import finish, make_fix, make_generate, run
from state.code_reflection import CodeInput, CodeOutput, CodeState
from state.common import RunContext


def build_graph(
    models: ModelProvider = settings_models, checkpointer: Checkpointer = None
) -> CompiledStateGraph[CodeState, RunContext, CodeInput, CodeOutput]:
    builder = StateGraph(CodeState, context_schema=RunContext, input_schema=CodeInput, output_schema=CodeOutput)
    builder.add_node("generate", make_generate(models), retry_policy=TRANSIENT_RETRY)
    builder.add_node("run", run)
    builder.add_node("fix", make_fix(models), retry_policy=TRANSIENT_RETRY)
    builder.add_node("finish", finish)
    builder.add_edge(START, "generate")
    builder.add_edge("generate", "run")
    builder.add_edge("fix", "run")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name="code_reflection")


graph = build_graph()
