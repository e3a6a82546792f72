"""Graph-level spans and metrics from LangChain callbacks: nodes, model calls, tool calls, retries.

The run manager passes one :class:`RunObserver` in each run's config, so node code carries no
instrumentation. LangGraph reports each node as a chain whose name is the node's, with its task's
``langgraph_checkpoint_ns``; model and tool calls inside it are its descendants by ``parent_run_id``.
A span's parent is the nearest ancestor with a span (the run's attempt span at the top), so subgraph
nodes nest under the node that runs the subgraph. A task seen twice is a retry (``RetryPolicy``).
Content (messages, tool arguments) goes on spans only with ``LOOM_TRACE_CONTENT=true``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.outputs import LLMResult
from langgraph.errors import GraphBubbleUp
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from server.observability import metrics

CONTENT_LIMIT = 4000


@dataclass
class Step:
    """One observed callback run: what a node, model or tool call needs at its end."""

    kind: str
    name: str
    node: str
    started: float
    span: Span | None = None
    labels: dict[str, str] = field(default_factory=dict)


class RunObserver(BaseCallbackHandler):
    """Spans (when tracing) and metrics (when enabled) for one run's nodes, models and tools."""

    run_inline = True  # called on the loop (or the node's thread) in order, not in an executor

    def __init__(
        self, graph: str, tracer: Tracer | None, root: Span | None, attributes: dict[str, Any], *, content: bool,
        measure: bool,
    ) -> None:  # fmt: skip
        self.graph, self.tracer, self.root, self.content, self.measure = graph, tracer, root, content, measure
        self.attributes = attributes
        self.steps: dict[UUID, Step] = {}
        self.parents: dict[UUID, UUID | None] = {}
        self.tasks: set[str] = set()

    # chains: graph nodes ---------------------------------------------------------------------------
    def on_chain_start(
        self, serialized: dict[str, Any], inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.parents[run_id] = parent_run_id
        metadata = metadata or {}
        node, task = metadata.get("langgraph_node"), str(metadata.get("langgraph_checkpoint_ns", ""))
        if node is None or kwargs.get("name") != node or self._inside_task(parent_run_id, task):
            return
        retry = task in self.tasks
        self.tasks.add(task)
        if retry:
            metrics.NODE_RETRIES.labels(self.graph, node).inc()
        attributes = {"loom.node": node, "loom.step": int(metadata.get("langgraph_step", 0)), "loom.retry": retry}
        self._open(run_id, parent_run_id, Step("node", node, node, time.perf_counter()), f"node {node}", attributes)
        self.steps[run_id].labels.update(task=task, retry=str(retry))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close_node(run_id, "success", None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close_node(run_id, "interrupted" if isinstance(error, GraphBubbleUp) else "error", error)

    def _close_node(self, run_id: UUID, outcome: str, error: BaseException | None) -> None:
        self.parents.pop(run_id, None)
        step = self.steps.pop(run_id, None)
        if step is None:
            return
        if self.measure:
            metrics.NODE_SECONDS.labels(self.graph, step.name, outcome).observe(time.perf_counter() - step.started)
        self._end(step, outcome, None if outcome == "interrupted" else error)

    # chat models ------------------------------------------------------------------------------------
    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        metadata = metadata or {}
        params = kwargs.get("invocation_params") or {}
        model = str(params.get("model") or params.get("model_name") or metadata.get("ls_model_name") or "unknown")
        node = str(metadata.get("langgraph_node", ""))
        owner = self._node_of(parent_run_id)
        retry = owner is not None and owner.labels["retry"] == "True"
        attributes: dict[str, Any] = {"gen_ai.request.model": model, "loom.node": node, "loom.retry": retry}
        if self.content:
            attributes["loom.input"] = _text([m.content for m in messages[0]] if messages else [])
        self.parents[run_id] = parent_run_id
        self._open(run_id, parent_run_id, Step("model", model, node, time.perf_counter()), f"model {model}", attributes)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        step = self._pop(run_id)
        if step is None:
            return
        usage, message = _usage(response)
        if message is not None and (served := message.response_metadata.get("model_name")):
            step.name = str(served)  # what answered, when the request did not name it
        if step.span is not None:
            step.span.update_name(f"model {step.name}")
            step.span.set_attribute("gen_ai.response.model", step.name)
        if self.measure:
            metrics.MODEL_CALLS.labels(step.name, step.node, "success").inc()
            metrics.MODEL_SECONDS.labels(step.name).observe(time.perf_counter() - step.started)
            for kind in ("input", "output"):
                metrics.MODEL_TOKENS.labels(step.name, step.node, kind).inc(usage.get(f"{kind}_tokens", 0))
        if step.span is not None:
            step.span.set_attributes(
                {"gen_ai.usage.input_tokens": usage.get("input_tokens", 0),
                 "gen_ai.usage.output_tokens": usage.get("output_tokens", 0)}
            )  # fmt: skip
            if self.content and message is not None:
                step.span.set_attribute("loom.output", _text(message.content))
        self._end(step, "success", None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        step = self._pop(run_id)
        if step is not None:
            if self.measure:
                metrics.MODEL_CALLS.labels(step.name, step.node, "error").inc()
            self._end(step, "error", error)

    # tools ------------------------------------------------------------------------------------------
    def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        metadata = metadata or {}
        tool = str(kwargs.get("name") or serialized.get("name") or "tool")
        permission = str(metadata.get("permission", "read"))
        attributes: dict[str, Any] = {"loom.tool": tool, "loom.tool.permission": permission}
        if self.content:
            attributes["loom.input"] = _text(input_str)
        self.parents[run_id] = parent_run_id
        step = Step("tool", tool, str(metadata.get("langgraph_node", "")), time.perf_counter())
        step.labels["permission"] = permission
        self._open(run_id, parent_run_id, step, f"tool {tool}", attributes)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        failed = isinstance(output, ToolMessage) and output.status == "error"
        self._close_tool(run_id, "error" if failed else "success", None, output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close_tool(run_id, "interrupted" if isinstance(error, GraphBubbleUp) else "error", error, None)

    def _close_tool(self, run_id: UUID, outcome: str, error: BaseException | None, output: Any) -> None:
        step = self._pop(run_id)
        if step is None:
            return
        if self.measure:
            metrics.TOOL_CALLS.labels(step.name, step.labels["permission"], outcome).inc()
        if self.content and step.span is not None and output is not None:
            step.span.set_attribute("loom.output", _text(getattr(output, "content", output)))
        self._end(step, outcome, None if outcome == "interrupted" else error)

    # spans ------------------------------------------------------------------------------------------
    def _open(
        self, run_id: UUID, parent_run_id: UUID | None, step: Step, name: str, attributes: dict[str, Any]
    ) -> None:
        if self.tracer is not None:
            span = self._parent_span(parent_run_id)
            context = trace.set_span_in_context(span) if span is not None else None
            step.span = self.tracer.start_span(name, context, attributes={**self.attributes, **attributes})
        self.steps[run_id] = step

    def _parent_span(self, run_id: UUID | None) -> Span | None:
        while run_id is not None:
            step = self.steps.get(run_id)
            if step is not None and step.span is not None:
                return step.span
            run_id = self.parents.get(run_id)
        return self.root

    def _inside_task(self, run_id: UUID | None, task: str) -> bool:
        """A chain inside a node's own task that happens to carry the node's name (not a new node)."""
        owner = self._node_of(run_id)
        return owner is not None and owner.labels["task"] == task

    def _node_of(self, run_id: UUID | None) -> Step | None:
        """The nearest enclosing node of a callback run."""
        while run_id is not None:
            step = self.steps.get(run_id)
            if step is not None and step.kind == "node":
                return step
            run_id = self.parents.get(run_id)
        return None

    def _pop(self, run_id: UUID) -> Step | None:
        self.parents.pop(run_id, None)
        return self.steps.pop(run_id, None)

    @staticmethod
    def _end(step: Step, outcome: str, error: BaseException | None) -> None:
        if step.span is None:
            return
        step.span.set_attribute("loom.outcome", outcome)
        if error is not None:
            step.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        step.span.end()


def _usage(response: LLMResult) -> tuple[dict[str, int], BaseMessage | None]:
    for generations in response.generations:
        for generation in generations:
            message = getattr(generation, "message", None)
            if message is not None:
                return dict(getattr(message, "usage_metadata", None) or {}), message
    usage = (response.llm_output or {}).get("token_usage") or {}
    return {"input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0)}, None


def _text(value: Any) -> str:
    return str(value)[:CONTENT_LIMIT]
