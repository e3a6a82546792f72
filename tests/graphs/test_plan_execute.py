"""The plan-and-execute graph end to end on the fake model: plans, DAG waves, retries, replans, approval."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from graphs.plan_execute import build_graph, plan_tools
from loom.settings import get_settings
from nodes.models.fake import tool_call
from nodes.plan_execute import steps as plan_steps
from nodes.plan_execute.execution import PlanFailed
from services.stores.shop import get_shop
from state.common import Permission, RunContext
from tests.fixtures.env import SetEnv
from tests.fixtures.models import ScriptedModels

SUNGLASSES = "Find round sunglasses that are in stock and tell me their prices"


Step = tuple[str, str | None, dict[str, Any], list[str]]


def plan(*steps: Step) -> dict[str, Any]:
    return {
        "steps": [
            {"id": i, "description": f"do {i}", "tool": t, "arguments": a, "depends_on": d} for i, t, a, d in steps
        ]
    }


async def run(
    graph: Any, text: str | Command[Any], *, thread: str = "t", permissions: tuple[Permission, ...] = ("read",)
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Stream a run; return its final state and its custom events."""
    state: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    payload = {"messages": [HumanMessage(text)]} if isinstance(text, str) else text
    config = {"configurable": {"thread_id": thread}}
    context = RunContext(permissions=permissions)
    async for mode, chunk in graph.astream(payload, config, context=context, stream_mode=["custom", "values"]):
        if mode == "custom":
            events.append(chunk)
        else:
            state = chunk
    return state, events


async def failed_run(graph: Any, text: str) -> tuple[dict[str, Any], list[dict[str, Any]], PlanFailed]:
    """A run that ends ``PlanFailed``: its final state (the report is in it), its custom events and the error."""
    state: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    with pytest.raises(PlanFailed) as raised:
        async for mode, chunk in graph.astream({"messages": [HumanMessage(text)]}, stream_mode=["custom", "values"]):
            if mode == "custom":
                events.append(chunk)
            else:
                state = chunk
    return state, events, raised.value


def kinds(events: list[dict[str, Any]], step: str | None = None) -> list[str]:
    return [e["event"] for e in events if step is None or e.get("step") == step]


def answer_with_prices(messages: list[BaseMessage]) -> AIMessage:
    """A synthesizer that, like a real one, reads the prices from the step results it was given."""
    results = json.loads(messages[-1].text.split("(JSON):\n", 1)[1])
    prices = next(r["output"]["prices"] for r in results if "prices" in r["output"])
    return AIMessage(content="In stock: " + "; ".join(f"{p['name']} ${p['price']:.2f}" for p in prices))


@pytest.fixture(autouse=True)
def instant_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the retry schedule instead of waiting it out."""
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(plan_steps, "backoff", record)
    return delays


async def test_sunglasses_request_runs_a_three_step_plan_against_the_catalogue(scripted: type[ScriptedModels]) -> None:
    models = scripted(synthesizer=[answer_with_prices])
    state, events = await run(build_graph(models), SUNGLASSES)
    assert [(s["id"], s["tool"], s["depends_on"]) for s in state["plan"]] == [
        ("step_1", "get_item_descriptions", []),
        ("step_2", "check_inventory", ["step_1"]),
        ("step_3", "get_item_price", ["step_2"]),
    ]
    assert state["results"]["step_2"]["output"]["in_stock_ids"] == ["SG-101", "SG-105"]
    assert state["messages"][-1].text == "In stock: Lennon Round Classic $89.00; Round Titanium Polarised $219.00"
    assert kinds(events)[0] == "plan_created" and events[0]["source"] == "rules"
    assert kinds(events, "step_3") == ["step_started", "step_completed"]
    assert "planner" not in models.models  # a plain request is planned without a model call


async def test_llm_planner_path_with_structured_output(scripted: type[ScriptedModels], set_env: SetEnv) -> None:
    set_env(LOOM_DIRECT_TOOL_DISPATCH="false")
    llm_plan = plan(
        ("step_1", "get_item_descriptions", {"category": "sunglasses", "filter": "round"}, []),
        ("step_2", "check_inventory", {"item_ids": {"$ref": "step_1.item_ids"}}, ["step_1"]),
        ("step_3", "get_item_price", {"item_ids": {"ref": "step_2.in_stock_ids"}}, ["step_2"]),
    )
    models = scripted(planner=[llm_plan], synthesizer=[answer_with_prices])
    state, events = await run(build_graph(models), SUNGLASSES)
    assert events[0] == {"event": "plan_created", "source": "llm", "attempt": 1, "steps": state["plan"]}
    assert "$219.00" in state["messages"][-1].text
    [prompt] = models.models["planner"].calls
    assert "get_item_price(item_ids: list[string]) [read]" in prompt[0].text and prompt[-1].text == SUNGLASSES


async def test_validation_errors_go_back_to_the_planner_precisely(scripted: type[ScriptedModels]) -> None:
    bad = plan(
        ("step_1", "find_cheapest", {"query": "hats"}, []),
        ("step_2", "get_item_price", {"item_ids": "HT-201"}, ["step_3"]),
        ("step_3", "check_inventory", {"item_ids": {"$ref": "step_2.prices"}}, []),
    )
    good = plan(("step_1", "get_item_price", {"item_ids": ["HT-201"]}, []))
    models = scripted(planner=[bad, good], synthesizer=["Canvas Bucket Hat costs $35.00."])
    state, events = await run(build_graph(models), "What should I buy for the beach under $40?")
    [invalid] = [e for e in events if e["event"] == "plan_invalid"]
    assert any("step_1 uses unknown tool 'find_cheapest'" in e for e in invalid["errors"])
    assert any(e.startswith("step_2 argument 'item_ids': Input should be a valid list") for e in invalid["errors"])
    assert any(e.startswith("Steps step_2 → step_3 → step_2") for e in invalid["errors"])
    feedback = models.models["planner"].calls[1][-1].text
    assert feedback.startswith("That plan was rejected:") and "find_cheapest" in feedback
    assert state["results"]["step_1"]["output"]["prices"][0]["price"] == 35.0


async def test_no_valid_plan_within_the_budget_ends_with_a_report_and_an_error(
    scripted: type[ScriptedModels],
) -> None:
    bad = plan(("step_1", "find_cheapest", {}, []))
    models = scripted(planner=[bad, bad, bad, "not json at all"])
    state, events, error = await failed_run(build_graph(models), "Plan my holiday")
    assert len(models.models["planner"].calls) == get_settings().plan_max_attempts
    assert state["report"]["status"] == "invalid_plan" and "find_cheapest" in state["report"]["error"]
    assert str(error).startswith("no valid plan after 3 attempts: ") and "find_cheapest" in str(error)
    assert state["messages"][-1].text.startswith("I could not complete this request")
    assert "step_started" not in kinds(events)


def barrier_tool(parties: int) -> BaseTool:
    barrier = asyncio.Barrier(parties)

    @tool
    async def wait_for_peers(label: str) -> dict[str, str]:
        """Returns only once every parallel step has started: proof they run at the same time."""
        async with asyncio.timeout(20):
            await barrier.wait()
        return {"label": label}

    return wait_for_peers


def thread_barrier_tool(parties: int) -> BaseTool:
    barrier = threading.Barrier(parties, timeout=20)

    @tool
    def blocking_wait(label: str) -> dict[str, str]:
        """A synchronous tool (like the database ones) that also needs its peers to run at once."""
        barrier.wait()
        return {"label": label}

    return blocking_wait


@pytest.mark.parametrize("make_tool", [barrier_tool, thread_barrier_tool])
async def test_independent_steps_run_at_the_same_time(
    scripted: type[ScriptedModels], make_tool: Callable[[int], BaseTool]
) -> None:
    parallel = make_tool(3)
    steps: list[Step] = [(f"s{n}", parallel.name, {"label": f"s{n}"}, []) for n in range(3)]
    fan_in: Step = (
        "join",
        "run_python",
        {
            "code": "import json; print(sorted(d['label'] for d in json.load(open('data.json'))))",
            "data": [{"$ref": "s0"}, {"$ref": "s1"}, {"$ref": "s2"}],
        },
        [],
    )
    models = scripted(planner=[plan(*steps, fan_in)], synthesizer=["done"])
    state, events = await run(build_graph(models, tools=[*plan_tools(), parallel]), "Wait for everyone")
    assert {k: r["attempts"] for k, r in state["results"].items()} == {"s0": 1, "s1": 1, "s2": 1, "join": 1}
    assert state["results"]["join"]["output"]["stdout"].strip() == "['s0', 's1', 's2']"
    started = [e["step"] for e in events if e["event"] == "step_started"]
    assert set(started[:3]) == {"s0", "s1", "s2"} and started[3] == "join"  # one wave, then the fan-in


def flaky_tool(failures: int, error: Exception) -> tuple[BaseTool, list[str]]:
    calls: list[str] = []

    @tool
    def lookup_supplier(item_id: str) -> dict[str, str]:
        """Ask the supplier's system about an item."""
        calls.append(item_id)
        if len(calls) <= failures:
            raise error
        return {"item_id": item_id, "supplier": "Acme Optics"}

    return lookup_supplier, calls


async def test_a_transient_failure_is_retried_with_seed_004_backoff(
    scripted: type[ScriptedModels], instant_backoff: list[float]
) -> None:
    flaky, calls = flaky_tool(2, ConnectionError("supplier API timed out"))
    models = scripted(planner=[plan(("step_1", flaky.name, {"item_id": "SG-101"}, []))], synthesizer=["Acme Optics."])
    state, events = await run(build_graph(models, tools=[flaky]), "Who supplies SG-101?")
    assert state["results"]["step_1"]["attempts"] == 3 and len(calls) == 3
    assert instant_backoff == [0.0, 0.1]  # retry 1 immediately, retry 2 after 0.1 s
    failed = [e for e in events if e["event"] == "step_failed"]
    assert [(e["attempt"], e["retry"]) for e in failed] == [(1, True), (2, True)]
    assert "ConnectionError: supplier API timed out" in failed[0]["error"]


async def test_a_step_that_keeps_failing_is_replanned_keeping_completed_results(
    scripted: type[ScriptedModels], instant_backoff: list[float]
) -> None:
    broken, broken_calls = flaky_tool(99, ConnectionError("supplier API down"))
    first = plan(
        ("step_1", "get_item_descriptions", {"category": "sunglasses", "filter": "aviator"}, []),
        ("step_2", broken.name, {"item_id": "SG-103"}, ["step_1"]),
        ("step_3", "get_item_price", {"item_ids": ["SG-103"]}, ["step_2"]),
    )
    replacement = plan(("step_4", "check_inventory", {"item_ids": {"$ref": "step_1.item_ids"}}, ["step_1"]))
    models = scripted(planner=[first, replacement], synthesizer=["The aviators are in stock."])
    state, events = await run(build_graph(models, tools=[*plan_tools(), broken]), "Tell me about aviators")
    assert len(broken_calls) == 1 + get_settings().plan_step_retries and instant_backoff == [0.0, 0.1, 0.2]
    [replanned] = [e for e in events if e["event"] == "replanned"]
    assert replanned["failed"] == ["step_2"] and replanned["kept"] == ["step_1"]
    assert [s["id"] for s in state["plan"]] == ["step_1", "step_4"]
    assert kinds(events, "step_1") == ["step_started", "step_completed"]  # not run again
    assert state["results"]["step_4"]["output"]["in_stock_ids"] == ["SG-103"]
    brief = models.models["planner"].calls[1][-1].text
    assert "step_1 (get_item_descriptions)" in brief and "supplier API down" in brief and "step_3" in brief


async def test_when_replans_are_spent_the_run_ends_with_a_structured_report(scripted: type[ScriptedModels]) -> None:
    broken, _ = flaky_tool(99, PermissionError("supplier refused the request"))
    first = plan(
        ("step_1", "get_item_price", {"item_ids": ["SG-101"]}, []),
        ("step_2", broken.name, {"item_id": "SG-101"}, []),
    )
    again = plan(("step_3", broken.name, {"item_id": "SG-101"}, []))
    models = scripted(planner=[first, again, again])
    graph = build_graph(models, tools=[*plan_tools(), broken])
    state, events, error = await failed_run(graph, "Price and supplier of SG-101?")
    assert "step step_3 failed" in str(error) and "supplier refused the request" in str(error)
    report = state["report"]
    assert report["status"] == "step_failed" and report["failed_step"] == "step_3"
    assert "supplier refused the request" in report["error"]
    assert report["partial_results"]["step_1"]["prices"][0]["price"] == 89.0
    assert kinds(events).count("replanned") == get_settings().plan_max_replans
    assert [e["attempt"] for e in events if e["event"] == "step_failed"] == [1, 1, 1]  # permanent: no retries
    assert (
        state["messages"][-1].text.startswith("I could not complete this request")
        and kinds(events)[-1] == "plan_failed"
    )


async def test_a_bad_reference_at_run_time_fails_the_step_without_retries(scripted: type[ScriptedModels]) -> None:
    bad_ref = plan(
        ("step_1", "get_item_descriptions", {"category": "hats"}, []),
        ("step_2", "get_item_price", {"item_ids": {"$ref": "step_1.in_stock_ids"}}, ["step_1"]),
    )
    fixed = plan(("step_3", "get_item_price", {"item_ids": {"$ref": "step_1.item_ids"}}, ["step_1"]))
    models = scripted(planner=[bad_ref, fixed], synthesizer=["Hats: $35 and $65."])
    state, events = await run(build_graph(models), "Compare what your hats cost")
    failed = next(e for e in events if e["event"] == "step_failed")
    assert failed["attempt"] == 1 and "no 'in_stock_ids' in the result of step_1" in failed["error"]
    assert [p["price"] for p in state["results"]["step_3"]["output"]["prices"]] == [35.0, 65.0]


APPROVE = {"decisions": [{"type": "approve"}]}
RETURN_PLAN = plan(("step_1", "process_return", {"order_id": "ORD-1001", "item_id": "SG-103", "reason": "too big"}, []))


async def test_a_write_plan_pauses_for_approval_then_runs(
    scripted: type[ScriptedModels], checkpointer: BaseCheckpointSaver[str]
) -> None:
    models = scripted(planner=[RETURN_PLAN], synthesizer=["Your refund of $149.00 is on its way."])
    graph = build_graph(models, checkpointer)
    paused, _ = await run(graph, "Return the aviators from ORD-1001", permissions=("read", "write"))
    assert "results" not in paused or not paused["results"]
    [interrupt] = (await graph.aget_state({"configurable": {"thread_id": "t"}})).interrupts
    assert interrupt.value["type"] == "plan_approval"
    assert [(s["id"], s["permission"], s["granted"]) for s in interrupt.value["steps_to_approve"]] == [
        ("step_1", "write", True)
    ]
    (action,) = interrupt.value["action_requests"]  # LangChain's HITLRequest: one action per step to approve
    assert (action["name"], action["args"]) == ("process_return", RETURN_PLAN["steps"][0]["arguments"])
    assert interrupt.value["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
    state, _ = await run(graph, Command(resume=APPROVE), permissions=("read", "write"))
    assert state["results"]["step_1"]["output"]["refund"] == 149.0
    assert state["messages"][-1].text == "Your refund of $149.00 is on its way."


async def test_an_ungranted_write_is_fed_back_once_then_a_rejection_reports(
    scripted: type[ScriptedModels], checkpointer: BaseCheckpointSaver[str]
) -> None:
    models = scripted(planner=[RETURN_PLAN, RETURN_PLAN])
    graph = build_graph(models, checkpointer)
    await run(graph, "Return the aviators from ORD-1001")
    feedback = models.models["planner"].calls[1][-1].text
    assert "step_1 uses process_return, which needs the 'write' permission; this run has: read." in feedback
    [interrupt] = (await graph.aget_state({"configurable": {"thread_id": "t"}})).interrupts
    assert interrupt.value["steps_to_approve"][0]["granted"] is False
    stock_before = await asyncio.to_thread(lambda: get_shop().stock(["SG-103"])[0][0]["quantity"])
    state, events = await run(
        graph, Command(resume={"decisions": [{"type": "reject", "message": "ask the store first"}]})
    )
    assert state["report"]["status"] == "rejected" and "ask the store first" in state["report"]["reason"]
    assert await asyncio.to_thread(lambda: get_shop().stock(["SG-103"])[0][0]["quantity"]) == stock_before
    assert kinds(events) == ["plan_failed"]


async def test_an_edited_step_runs_with_the_approver_s_arguments_and_the_old_form_still_answers(
    scripted: type[ScriptedModels], checkpointer: BaseCheckpointSaver[str]
) -> None:
    models = scripted(planner=[RETURN_PLAN, RETURN_PLAN], synthesizer=["Returned.", "Returned."])
    graph = build_graph(models, checkpointer)
    await run(graph, "Return the aviators from ORD-1001", permissions=("read", "write"))
    edited = {**RETURN_PLAN["steps"][0]["arguments"], "reason": "scratched lens"}
    edit = {"type": "edit", "edited_action": {"name": "process_return", "args": edited}}
    state, _ = await run(graph, Command(resume={"decisions": [edit]}), permissions=("read", "write"))
    assert state["plan"][0]["arguments"] == edited and state["results"]["step_1"]["output"]["refund"] == 149.0
    await run(graph, "Return the aviators from ORD-1001", thread="old-form", permissions=("read", "write"))
    state, _ = await run(graph, Command(resume={"decision": "reject", "reason": "not today"}), thread="old-form")
    assert state["report"]["status"] == "rejected" and "not today" in state["report"]["reason"]


async def test_a_reasoning_step_is_a_small_react_loop_over_read_tools(scripted: type[ScriptedModels]) -> None:
    steps = plan(
        ("step_1", "get_item_descriptions", {"category": "watches"}, []),
        ("step_2", None, {"item_ids": {"$ref": "step_1.item_ids"}}, ["step_1"]),
    )
    models = scripted(
        planner=[steps],
        reasoner=[tool_call("get_item_price", {"item_ids": ["WT-301"]}), "The Field Watch costs $185.00."],
        synthesizer=["It costs $185.00."],
    )
    state, _ = await run(build_graph(models), "Is the field watch worth it?")
    assert state["results"]["step_2"]["output"] == "The Field Watch costs $185.00."
    first_prompt = models.models["reasoner"].calls[0]
    assert "WT-301" in first_prompt[-1].text  # the referenced result reached the step
    assert "185.0" in models.models["reasoner"].calls[1][-1].text  # the tool ran and the loop went on


async def test_synthesis_streams_token_by_token(scripted: type[ScriptedModels]) -> None:
    answer = "Lennon Round Classic costs $89.00 and Round Titanium Polarised costs $219.00."
    graph = build_graph(scripted(synthesizer=[answer]))
    chunks: list[str] = []
    async for item in graph.astream({"messages": [HumanMessage(SUNGLASSES)]}, stream_mode="messages"):
        chunk, meta = cast(tuple[Any, dict[str, Any]], item)
        if isinstance(chunk, AIMessageChunk) and meta["langgraph_node"] == "synthesize" and chunk.text:
            chunks.append(chunk.text)
    assert len(chunks) == len(answer.split(" ")) and "".join(chunks) == answer


async def test_planning_with_code_runs_pandas_in_the_sandbox(scripted: type[ScriptedModels]) -> None:
    code = (
        "import json, pandas as pd\ndf = pd.DataFrame(json.load(open('data.json')))\nprint(round(df.price.mean(), 2))"
    )
    steps = plan(
        ("step_1", "get_item_price", {"item_ids": ["SG-101", "SG-103", "SG-105"]}, []),
        ("step_2", "run_python", {"code": code, "data": {"$ref": "step_1.prices"}}, ["step_1"]),
    )
    models = scripted(planner=[steps], synthesizer=["On average $152.33."])
    state, _ = await run(build_graph(models), "What is the average price of SG-101, SG-103 and SG-105?")
    assert state["results"]["step_2"]["output"]["stdout"].strip() == "152.33"


async def test_a_second_request_in_the_thread_starts_a_fresh_plan(
    scripted: type[ScriptedModels], checkpointer: BaseCheckpointSaver[str]
) -> None:
    hats = plan(("step_1", "get_item_price", {"item_ids": ["HT-201", "HT-202"]}, []))
    models = scripted(planner=[hats], synthesizer=[answer_with_prices, "Hats: $35 and $65."])
    graph = build_graph(models, checkpointer)
    await run(graph, SUNGLASSES)
    state, events = await run(graph, "Compare what your hats cost")
    assert list(state["results"]) == ["step_1"]  # nothing left over from the first turn
    assert [p["item_id"] for p in state["results"]["step_1"]["output"]["prices"]] == ["HT-201", "HT-202"]
    assert [m.type for m in state["messages"]] == ["human", "ai", "human", "ai"]
    assert kinds(events)[0] == "plan_created"


async def test_on_local_models_the_answer_quotes_the_steps_results(
    scripted: type[ScriptedModels], set_env: SetEnv
) -> None:
    """A 135M model garbles a summary of rows; on ``local:`` the answer is the rows, as the assistant does."""
    set_env(LOOM_MODELS__SYNTHESIZER="local:smollm2")
    models = scripted(synthesizer=["Sure, I can help with that. Here's a JSON response: ```json {"])
    state, _ = await run(build_graph(models), SUNGLASSES)
    answer = state["messages"][-1].text
    assert "Lennon Round Classic · 89.0" in answer and "Round Titanium Polarised · 219.0" in answer
    assert "in_stock_ids: SG-101, SG-105" in answer and "JSON response" not in answer
    assert not models.models["synthesizer"].calls
