"""The run observer on a real graph in process: span tree, content only when asked, retries counted.

Spans go to the SDK's in-memory exporter; the live tests (``test_tracing.py``) check the same tree
across processes over OTLP.
"""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from nodes.models import retry_budget
from server.observability.callbacks import RunObserver
from tests.server.fixture_graphs import ProviderDown, build_flaky
from tests.server.obs_graphs import build_traced

QUESTION = "what is the launch plan"


async def traced_spans(content: bool) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    root = tracer.start_span("run.attempt traced")
    observer = RunObserver("traced", tracer, root, {"loom.run_id": "r1"}, content=content, measure=False)
    config = {"configurable": {"thread_id": "t1"}, "callbacks": [observer]}
    await build_traced(InMemorySaver()).ainvoke({"messages": [("user", QUESTION)]}, config)
    root.end()
    assert not observer.steps and not observer.parents, "every callback run was closed"
    return list(exporter.get_finished_spans())


def parent_names(spans: list[ReadableSpan]) -> list[tuple[str, str]]:
    by_id = {span.context.span_id: span.name for span in spans}
    return sorted((span.name, by_id[span.parent.span_id]) for span in spans if span.parent)


async def test_spans_nest_by_node_and_carry_no_content_by_default() -> None:
    spans = await traced_spans(content=False)
    assert parent_names(spans) == [
        ("model fake", "node agent"),
        ("model fake", "node agent"),
        ("node agent", "run.attempt traced"),
        ("node agent", "run.attempt traced"),
        ("node inner", "run.attempt traced"),
        ("node leaf", "node inner"),
        ("node tools", "run.attempt traced"),
        ("tool lookup", "node tools"),
    ]
    assert all(span.attributes and span.attributes["loom.run_id"] == "r1" for span in spans if span.parent)
    assert not any(QUESTION in str(span.attributes) for span in spans)


async def test_content_goes_on_spans_when_asked() -> None:
    spans = {span.name: span for span in await traced_spans(content=True)}
    assert QUESTION in str(spans["model fake"].attributes)
    assert "found the plan" in str(spans["tool lookup"].attributes)


async def test_each_retry_of_a_node_is_counted() -> None:
    labels = {"graph": "flaky-in-process", "node": "call_flaky_provider"}
    before = REGISTRY.get_sample_value("loom_node_retries_total", labels) or 0.0
    observer = RunObserver("flaky-in-process", None, None, {}, content=False, measure=True)
    config = {"configurable": {"thread_id": "t2"}, "callbacks": [observer]}
    with retry_budget(3), pytest.raises(ProviderDown):
        await build_flaky(InMemorySaver()).ainvoke({"log": []}, config)
    assert (REGISTRY.get_sample_value("loom_node_retries_total", labels) or 0.0) - before == 3
