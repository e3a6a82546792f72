from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from PIL import Image

from graphs.assistant import build_graph
from loom.settings import Settings, get_settings
from nodes.models.fake import tool_call, tool_calls
from services.paths import artifacts_folder
from state.common import RunContext
from tests.fixtures.env import SetEnv
from tests.fixtures.models import ScriptedModels

SNAPSHOT = Path(__file__).parent / "snapshots" / "assistant.mmd"


def config(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def ask(graph: Any, text: str, thread: str = "t1", user: str = "demo") -> dict[str, Any]:
    return await graph.ainvoke(  # type: ignore[no-any-return]
        {"messages": [HumanMessage(text)]}, config(thread), context=RunContext(user_id=user)
    )


def tool_results(state: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def test_topology_matches_snapshot() -> None:
    drawing = build_graph().get_graph().draw_mermaid()
    assert drawing == SNAPSHOT.read_text(), "graph topology changed: update the snapshot if intended"


@pytest.mark.parametrize(
    ("request_text", "specialist"),
    [
        ("Write a blog on Generative AI in Manufacturing", "content_writer"),
        ("Write Python code to find prime numbers", "coder"),
    ],
)
async def test_clear_requests_reach_text_specialists_without_a_router_call(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels], request_text: str, specialist: str
) -> None:
    models = scripted(**{specialist: ["Here is the answer."]})
    state = await ask(build_graph(models, checkpointer), request_text)
    assert state["route"]["specialist"] == specialist
    assert state["route"]["stage"] == "keywords" and state["route"]["confidence"] >= 0.6
    assert state["messages"][-1].content == "Here is the answer."
    assert "router" not in models.models or not models.models["router"].calls


async def test_image_request_saves_a_labelled_stand_in_png(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(image_generator=["Here is your image (an offline stand-in)."])
    state = await ask(build_graph(models, checkpointer), "Generate an image of a futuristic factory")
    (result,) = tool_results(state)
    assert result.name == "generate_image" and "stand-in" in result.text
    assert result.text.endswith("real image generation needs an OpenAI API key (OPENAI_API_KEY).")
    assert "Tell the user" not in result.text and str(get_settings().data_dir) not in result.text
    (artifact,) = state["artifacts"]
    assert result.text.startswith(f"Image: {artifact['url']}. ")
    assert artifact["kind"] == "image" and "[stand-in]" in artifact["title"]
    # stored per owner and thread; the state names the file, never its path on the server
    assert "path" not in artifact and str(get_settings().data_dir) not in json.dumps(state["artifacts"])
    with Image.open(artifacts_folder(get_settings(), "demo", "t1") / artifact["name"]) as image:
        assert image.format == "PNG"


async def test_chart_request_renders_png_and_reports_real_statistics(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(document_analyst=["Q2 was the best quarter."])
    state = await ask(build_graph(models, checkpointer), "Create a chart from this data: Q1 120, Q2 150, Q3 90")
    (result,) = tool_results(state)
    assert "mean: 120.0" in result.text and "max: Q2 (150)" in result.text
    (artifact,) = state["artifacts"]
    with Image.open(artifacts_folder(get_settings(), "demo", "t1") / artifact["name"]) as image:
        assert image.format == "PNG"
    assert artifact["url"] == f"/threads/t1/artifacts/{artifact['name']}"
    assert result.text.startswith(f"Chart: {artifact['url']}. ") and str(get_settings().data_dir) not in result.text
    assert artifact["title"] == "Bar chart, Q1 to Q3", "a request that names no title gets one from its data"
    # the analyst's model saw the tool's statistics before answering
    prompt = models.models["document_analyst"].calls[-1]
    assert any(isinstance(m, ToolMessage) and "total: 360.0" in m.text for m in prompt)


async def test_a_chart_is_titled_as_the_request_names_it(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    graph = build_graph(scripted(document_analyst=["Done."]), checkpointer)
    state = await ask(graph, "Plot monthly revenue as a line chart: Jan 10, Feb 12, Mar 9")
    assert [a["title"] for a in state["artifacts"]] == ["Monthly revenue"]


async def test_chart_from_a_workspace_csv(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    graph = build_graph(scripted(), checkpointer)
    await ask(graph, "Search my files for the quarterly report")  # seeds the demo workspace
    state = await ask(graph, "Visualize the monthly revenue in sales_q3.csv")
    result = tool_results(state)[-1]
    assert result.name == "create_chart" and "Statistics: count: 3" in result.text


async def test_a_missing_csv_is_named_as_the_user_named_it_never_by_server_path(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    state = await ask(build_graph(scripted(), checkpointer), "Visualize the monthly revenue in nope.csv")
    result = tool_results(state)[-1]
    assert result.name == "create_chart" and "'nope.csv'" in result.text
    assert str(get_settings().data_dir) not in result.text


async def test_calendar_search_returns_the_users_events(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    state = await ask(build_graph(scripted(), checkpointer), "Search my calendar for AI events")
    (result,) = tool_results(state)
    titles = [event["title"] for event in json.loads(result.text)["results"]]
    assert "AI Workshop" in titles
    assert "AI Ethics Board (private)" not in titles  # alice's event


async def test_everything_about_a_topic_searches_all_four_sources(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    text = "Find everything about 'AI Strategy' - files, emails, calendar, and messages"
    state = await ask(build_graph(scripted(), checkpointer), text)
    results = {m.name: json.loads(m.text)["results"] for m in tool_results(state)}
    assert set(results) == {"search_files", "search_emails", "search_calendar", "search_messages"}
    assert all(results.values()), "every source has an AI Strategy hit in the demo data"


async def test_a_small_model_answers_a_tool_turn_with_the_results_themselves(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels], set_env: SetEnv
) -> None:
    """With quoting on (the default for local: models), the reply lists the hits; no model garbles them."""
    set_env(LOOM_QUOTE_TOOL_RESULTS="true")
    models = scripted(workspace_agent=["a summary that must not be used"])
    state = await ask(build_graph(models, checkpointer), "Tell me everything about AI Strategy")
    reply = state["messages"][-1]
    assert isinstance(reply, AIMessage) and not reply.tool_calls
    sections = reply.text.split("\n\n")
    assert [s.splitlines()[0] for s in sections] == [
        f"{source} matching “AI Strategy”:" for source in ("calendar", "emails", "files", "messages")
    ]
    assert "- AI Strategy review · Leadership review of the AI strategy deck" in reply.text
    assert "summary" not in reply.text and models.models["workspace_agent"].calls == []


def test_quoting_tool_results_defaults_to_local_models_only() -> None:
    assert Settings(model="local:smollm2").quotes_tool_results("workspace_agent")
    assert not Settings(model="fake:echo").quotes_tool_results("workspace_agent")
    assert not Settings(model="local:smollm2", models={"coder": "openai:gpt-4o"}).quotes_tool_results("coder")
    assert not Settings(model="local:smollm2", quote_tool_results=False).quotes_tool_results("workspace_agent")


async def test_users_only_see_their_own_workspace(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    graph = build_graph(scripted(), checkpointer)
    demo = await ask(graph, "Search my calendar for AI events", thread="demo-thread", user="demo")
    alice = await ask(graph, "Search my calendar for AI events", thread="alice-thread", user="alice")
    demo_titles = {e["title"] for e in json.loads(tool_results(demo)[0].text)["results"]}
    alice_titles = {e["title"] for e in json.loads(tool_results(alice)[0].text)["results"]}
    assert "AI Ethics Board (private)" in alice_titles
    assert demo_titles and demo_titles.isdisjoint(alice_titles)


async def test_unclear_request_is_routed_by_the_model(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(router=[{"label": "coder", "reason": "asks how to automate a task"}], coder=["Use a cron job."])
    state = await ask(build_graph(models, checkpointer), "How would I automate my morning routine?")
    assert state["route"] == {
        "specialist": "coder",
        "stage": "llm",
        "confidence": 0.7,
        "reason": "asks how to automate a task",
    }
    assert any(u["node"] == "router" for u in state.get("usage", []))


async def test_unusable_router_output_falls_back_and_says_why(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(router=['{"label": "astronaut"}'])
    state = await ask(build_graph(models, checkpointer), "How would I automate my morning routine?")
    assert state["route"]["specialist"] == "content_writer"
    assert state["route"]["stage"] == "fallback" and "unusable" in state["route"]["reason"]


async def test_follow_up_keeps_the_specialist_and_its_history(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(content_writer=["A long blog about factories.", "A short blog."])
    graph = build_graph(models, checkpointer)
    await ask(graph, "Write a blog on Generative AI in Manufacturing")
    state = await ask(graph, "make it shorter")
    assert state["route"]["stage"] == "follow_up" and state["route"]["specialist"] == "content_writer"
    second_prompt = models.models["content_writer"].calls[-1]
    assert any(isinstance(m, AIMessage) and m.content == "A long blog about factories." for m in second_prompt)
    assert state["messages"][-1].content == "A short blog."


async def test_handoffs_are_capped_per_turn(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    ping = tool_call("hand_off", {"specialist": "document_analyst", "reason": "ping"})
    pong = tool_call("hand_off", {"specialist": "image_generator", "reason": "pong"})
    models = scripted(
        router=[{"label": "image_generator", "reason": "unclear"}],
        image_generator=[ping, ping],
        document_analyst=[pong, pong, "final answer from the analyst"],
    )
    state = await ask(build_graph(models, checkpointer), "Something unusual please")
    refused = [m for m in tool_results(state) if "refused" in m.text]
    assert len(refused) == 1 and "limit" in refused[0].text
    assert state["messages"][-1].content == "final answer from the analyst"
    assert len([m for m in tool_results(state) if m.text.startswith("Handed off")]) == 3  # max_handoffs


async def test_model_usage_is_recorded_per_node(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(content_writer=["one two three"])
    state = await ask(build_graph(models, checkpointer), "Write a poem about the sea")
    (usage,) = state["usage"]
    assert usage["node"] == "content_writer" and usage["model"] == "fake"
    assert usage["output_tokens"] == 3 and usage["input_tokens"] > 0


async def test_answers_stream_token_by_token_with_the_route(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(coder=["def add(a, b): return a + b"])
    graph = build_graph(models, checkpointer)
    tokens, events = [], []
    async for mode, data in graph.astream(
        {"messages": [HumanMessage("Write Python code to add numbers")]},
        config(),
        context=RunContext(),
        stream_mode=["messages", "custom"],
    ):
        if mode == "messages" and isinstance(data[0], AIMessageChunk) and data[0].content:
            tokens.append(data[0].content)
        elif mode == "custom":
            events.append(data)
    assert len(tokens) > 3 and "".join(tokens) == "def add(a, b): return a + b"
    assert events[0]["event"] == "route" and events[0]["specialist"] == "coder"


async def test_state_survives_in_the_checkpointer(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    await ask(build_graph(scripted(), checkpointer), "Write a poem about the sea", thread="persist")
    fresh = build_graph(scripted(), checkpointer)
    snapshot = await fresh.aget_state(config("persist"))
    assert [m.type for m in snapshot.values["messages"]] == ["human", "ai"]
    assert snapshot.values["route"]["specialist"] == "content_writer"


async def test_tool_calls_to_unknown_tools_are_answered_not_crashed(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    models = scripted(
        router=[{"label": "workspace_agent", "reason": "x"}],
        workspace_agent=[tool_calls(("delete_everything", {}, None)), "Sorry, I cannot do that."],
    )
    state = await ask(build_graph(models, checkpointer), "Something unusual please")
    (result,) = tool_results(state)
    assert result.status == "error" and "delete_everything" in result.text
    assert state["messages"][-1].content == "Sorry, I cannot do that."


async def thread_bytes(saver: Any, thread: str) -> int:
    """What a thread occupies in the SQLite saver: checkpoint blobs, metadata and pending writes."""

    def measure() -> int:
        total = 0
        with saver.cursor(transaction=False) as cursor:
            for query in (
                "SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints WHERE thread_id = ?",
                "SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?",
            ):
                (size,) = cursor.execute(query, (thread,)).fetchone()
                total += int(size)
        return total

    return await asyncio.to_thread(measure)


async def test_a_long_thread_stores_each_message_once_not_every_step(
    checkpointer: BaseCheckpointSaver[str], scripted: type[ScriptedModels]
) -> None:
    """A turn costs the same storage at turn 12 as at turn 3: the history is not re-serialised each step."""
    graph = build_graph(scripted(), checkpointer)
    sizes = [0]
    for _ in range(12):
        await ask(graph, "Write a poem about the sea", thread="long")
        sizes.append(await thread_bytes(checkpointer, "long"))
    added = [later - earlier for earlier, later in itertools.pairwise(sizes)]
    assert added[11] < 1.5 * added[2], added
    first = (await graph.aget_state(config("long"))).values["messages"]
    second = (await build_graph(scripted(), checkpointer).aget_state(config("long"))).values["messages"]
    assert len(first) == 24 and [m.id for m in first] == [m.id for m in second]
    assert all(m.id for m in first) and len({m.id for m in first}) == 24
