"""Plan-and-execute (seeds 001, 003, 004): a validated plan that runs as a parallel DAG and replans on failure.

    START → intake → planner → validate ─┬→ planner            (precise errors back, bounded)
                                          ├→ approve ─┬→ dispatch (a human approved the writes)
                                          │           └→ report
                                          ├→ dispatch ─┬→ run_step ×N → dispatch   (Send: ready steps at once)
                                          │            ├→ planner     (replan the failed part, bounded)
                                          │            ├→ synthesize → episode → END   (streamed answer)
                                          │            └→ report → episode             (structured failure report)
                                          └→ report
    report → episode → END when the approver rejected the plan; otherwise → failed, which raises ``PlanFailed``
    once the report is in the state, so the run ends ``error``, not ``success``.

``episode`` stores the run (goal, steps, outcome, lesson) in the caller's store; the planner reads similar lessons.

A step without a tool runs ``step_reasoner``, a small ReAct subgraph over the run's read tools.
Plans may also use the tools of the MCP servers in LOOM_MCP_SERVERS (``services.mcp``), listed afresh
(from a cache) by each node that reads tools; a non-read one goes through ``approve`` as Loom's own do.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from nodes.common.agent import after_agent, make_agent
from nodes.common.permissions import permission_of
from nodes.common.toolsets import ToolRegistry, refreshing
from nodes.models import TRANSIENT_RETRY, ModelProvider, settings_models
from nodes.plan_execute.episodes import after_episode, remember_episode
from nodes.plan_execute.execution import dispatch, failed, intake, make_synthesizer, report
from nodes.plan_execute.planner import make_approval, make_planner, make_validator
from nodes.plan_execute.steps import REASONER, make_step_runner
from nodes.tools.code import run_python
from nodes.tools.errors import tool_error_message
from nodes.tools.knowledge import search_knowledge_base
from nodes.tools.shop import SHOP_TOOLS
from services.mcp import mcp_tools
from state.common import RunContext
from state.plan_execute import PlanExecuteInput, PlanExecuteOutput, PlanExecuteState, ReasonerState


def plan_tools() -> list[BaseTool]:
    """The tools a plan may use: code in the sandbox, the seed-001 shop, and the knowledge base."""
    return [run_python, *SHOP_TOOLS, search_knowledge_base]


def build_reasoner(
    models: ModelProvider, tools: Sequence[BaseTool]
) -> CompiledStateGraph[ReasonerState, RunContext, ReasonerState, ReasonerState]:
    """The ReAct loop of a reasoning step: read tools only, bounded by ``max_tool_rounds``."""
    builder = StateGraph(ReasonerState, context_schema=RunContext)
    builder.add_node("reasoner", make_agent("reasoner", REASONER, models, tools), retry_policy=TRANSIENT_RETRY)
    tool_node = ToolNode(list(tools), handle_tool_errors=tool_error_message)
    builder.add_node("reasoner_tools", tool_node, retry_policy=TRANSIENT_RETRY)
    builder.add_edge(START, "reasoner")
    builder.add_conditional_edges("reasoner", after_agent, {"tools": "reasoner_tools", "router": END, END: END})
    builder.add_edge("reasoner_tools", "reasoner")
    return builder.compile(name="step_reasoner")


def build_graph(
    models: ModelProvider = settings_models,
    checkpointer: Checkpointer = None,
    tools: Sequence[BaseTool] | None = None,
    store: BaseStore | None = None,
) -> CompiledStateGraph[PlanExecuteState, RunContext, PlanExecuteInput, PlanExecuteOutput]:
    registry = ToolRegistry(plan_tools() if tools is None else tools, found=mcp_tools)
    reasoner = build_reasoner(models, [t for t in registry.own.values() if permission_of(t) == "read"])
    builder = StateGraph(
        PlanExecuteState, context_schema=RunContext, input_schema=PlanExecuteInput, output_schema=PlanExecuteOutput
    )
    builder.add_node("intake", intake)
    builder.add_node("planner", refreshing(make_planner(models, registry), registry), retry_policy=TRANSIENT_RETRY)
    builder.add_node("validate", refreshing(make_validator(registry), registry))
    builder.add_node("approve", refreshing(make_approval(registry), registry))
    builder.add_node("dispatch", dispatch)
    builder.add_node("run_step", refreshing(make_step_runner(registry, reasoner), registry))
    builder.add_node("synthesize", make_synthesizer(models), retry_policy=TRANSIENT_RETRY)
    builder.add_node("report", report)
    builder.add_node("episode", remember_episode)
    builder.add_node("failed", failed)
    builder.add_edge(START, "intake")
    builder.add_edge("intake", "planner")
    builder.add_edge("planner", "validate")
    builder.add_edge("run_step", "dispatch")
    builder.add_edge("synthesize", "episode")
    builder.add_edge("report", "episode")
    builder.add_conditional_edges("episode", after_episode, ["failed", END])
    return builder.compile(checkpointer=checkpointer, store=store, name="plan_execute")


graph = build_graph()
