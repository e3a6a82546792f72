"""``loom eval run`` and ``loom eval compare`` in real processes, against a real Loom server and the scripted
OpenAI-compatible model, on ``tests/loom/evals/orders_graph.py``.

The script decides which node goes wrong for which example: ``classify`` mislabels ``misrouted`` and
``refund-missed``, ``answer`` gives a wrong answer to ``wrong-answer`` (and the judge says so). The stored
experiment must name exactly those examples, checks and components, with exact rates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loom.settings import Settings
from tests.fixtures import openai_server as scripted
from tests.fixtures.openai_server import Body, Reply, ScriptedOpenAI, last_is_tool, system_says, text
from tests.fixtures.servers import new_server

LOOM = str(Path(sys.executable).parent / "loom")
CONFIG = Path(__file__).parent / "evals" / "langgraph.json"
SHIPPED = "The answer says the order has shipped"
DATASET = [
    {"id": "ok", "inputs": "Where is my order 42?", "rubric": [SHIPPED],
     "expected": {"state": {"label": "order", "user": "demo"}, "tools": ["lookup_order"], "contains": ["shipped"],
                  "max_tokens": 100000, "max_cost_usd": 1.0}},
    {"id": "misrouted", "inputs": "Where is my order 7?",
     "expected": {"state": {"label": "order"}, "tools": ["lookup_order"], "tools_mode": "superset",
                  "contains": ["shipped"]}},
    {"id": "wrong-answer", "inputs": "Has order 9 shipped?", "rubric": [SHIPPED],
     "expected": {"state": {"label": "order"}, "tools": ["lookup_order"], "contains": ["shipped"]}},
    {"id": "refund", "inputs": "I want a refund for order 5",
     "expected": {"state": {"label": "refund"}, "nodes": ["classify", "approve"], "nodes_mode": "superset",
                  "interrupt": True}},
    {"id": "refund-missed", "inputs": "Please refund order 6",
     "expected": {"state": {"label": "refund"}, "nodes": ["classify", "approve"], "nodes_mode": "superset",
                  "interrupt": True}},
    {"id": "greeting", "inputs": "Hello there", "metadata": {"user_id": "alice"},  # the run acts for alice
     "expected": {"state": {"label": "other", "user": "alice"}, "not_contains": ["refund"], "max_steps": 3}},
]  # fmt: skip


def user_says(words: str) -> Callable[[Body], bool]:
    return lambda body: any(m["role"] == "user" and words in str(m["content"]) for m in body["messages"])


def every(*tests: Callable[[Body], bool]) -> Callable[[Body], bool]:
    return lambda body: all(test(body) for test in tests)


def classify(words: str, label: str) -> Reply:
    return text(label, when=every(system_says("Classify"), user_says(words)))


def answer(words: str, reply: str) -> Reply:
    return text(reply, when=every(system_says("Answer the customer"), user_says(words)))


def looks_up(words: str, order: str, reply: str) -> list[Reply]:
    """``answer`` calls ``lookup_order``, then answers with ``reply`` once the tool has answered."""
    asking = every(system_says("Answer the customer"), user_says(words))
    return [
        scripted.call("lookup_order", {"order_id": order}, when=lambda b: asking(b) and not last_is_tool(b)),
        text(reply, when=lambda b: asking(b) and last_is_tool(b)),
    ]


def verdict(answer_words: str, met: bool) -> Reply:
    """The judge's boolean verdict (openevals' ``score`` schema) on the answer that contains ``answer_words``."""
    reasoning = "It says the order shipped." if met else "It does not say the order shipped."
    judging = every(scripted.schema_named("score"), user_says(answer_words))
    return scripted.structured({"reasoning": reasoning, "score": met}, when=judging)


def first_script() -> list[Reply]:
    return [
        classify("order 42", "order"),
        *looks_up("order 42", "42", "Order 42 has shipped."),
        verdict("Order 42 has shipped.", True),
        classify("order 7", "other"),  # classify is wrong: state, tools and contains fail
        answer("order 7", "I can help with that."),
        classify("order 9", "order"),
        *looks_up("order 9", "9", "Sorry, I do not know."),  # answer is wrong: contains and rubric fail
        verdict("Sorry, I do not know.", False),
        classify("order 5", "refund"),
        classify("order 6", "order"),  # classify is wrong: state, nodes and interrupt fail
        answer("order 6", "Order 6 is on its way."),
        classify("Hello there", "other"),
        answer("Hello there", "Hello! How can I help?"),
    ]


def second_script() -> list[Reply]:
    """``misrouted`` is fixed, ``greeting`` now breaks ``not_contains`` in ``answer``; the rest as before."""
    return [
        classify("order 42", "order"),
        *looks_up("order 42", "42", "Order 42 has shipped."),
        verdict("Order 42 has shipped.", True),
        classify("order 7", "order"),
        *looks_up("order 7", "7", "Order 7 has shipped."),
        classify("order 9", "order"),
        *looks_up("order 9", "9", "Sorry, I do not know."),
        verdict("Sorry, I do not know.", False),
        classify("order 5", "refund"),
        classify("order 6", "order"),
        answer("order 6", "Order 6 is on its way."),
        classify("Hello there", "other"),
        answer("Hello there", "Hello! Do you need a refund?"),
    ]


def loom(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([LOOM, *args], capture_output=True, text=True, timeout=300, check=False, env=env)


def run_experiment(dataset: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    common = ("--graph", "orders", "--config", str(CONFIG), "--judge", "openai:gpt-4o-mini", "--concurrency", "2")
    result = loom("eval", "run", str(dataset), *common, "--json", str(out), *extra)
    assert out.exists(), result.stdout + result.stderr
    return result, json.loads(out.read_text())


def failures(experiment: dict[str, Any]) -> dict[str, tuple[list[str], str | None]]:
    """Failing example → (its failing checks, its component)."""
    return {
        example["id"]: (sorted(n for n, c in example["checks"].items() if not c["passed"]), example["component"])
        for example in experiment["examples"]
        if not example["passed"]
    }


@pytest.mark.live
def test_an_experiment_names_the_failing_examples_checks_and_components_and_compare_lists_the_changes(
    openai_server: ScriptedOpenAI, loom_env: Settings, tmp_path: Path
) -> None:
    dataset = tmp_path / "orders.jsonl"
    dataset.write_text("".join(json.dumps(example) + "\n" for example in DATASET))

    (tmp_path / "custom.py").write_text(  # a custom evaluator, from a file in the working directory
        "def brief(*, outputs, **_):\n    return {'key': 'brief', 'score': len(outputs) < 80, 'comment': 'length'}\n"
    )
    openai_server.add(*first_script())
    result, first = run_experiment(
        dataset, tmp_path / "first.json", "--min-score", "0.9", "--evaluator", "./custom.py:brief"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "below --min-score" in result.stdout
    assert not openai_server.unused and not openai_server.rejected
    assert failures(first) == {
        "misrouted": (["contains", "state", "tools"], "classify"),
        "wrong-answer": (["contains", "rubric"], "answer"),
        "refund-missed": (["interrupt", "nodes", "state"], "classify"),
    }
    assert first["score"] == 0.5
    assert first["checks"] == {
        "brief": 1.0, "contains": 0.3333, "interrupt": 0.5, "max_cost_usd": 1.0, "max_steps": 1.0, "max_tokens": 1.0,
        "nodes": 0.5, "not_contains": 1.0, "rubric": 0.5, "state": 0.6667, "tools": 0.6667,
    }  # fmt: skip
    assert first["components"] == {"classify": 2, "answer": 1}
    by_id = {example["id"]: example for example in first["examples"]}
    assert by_id["misrouted"]["checks"]["state"]["reason"] == "label is 'other', expected 'order'"
    assert [(s["criterion"], s["score"]) for s in by_id["ok"]["rubric"]] == [(SHIPPED, 1)]
    assert [(s["criterion"], s["score"]) for s in by_id["wrong-answer"]["rubric"]] == [(SHIPPED, 0)]
    assert by_id["wrong-answer"]["rubric"][0]["reason"] == "It does not say the order shipped."
    assert by_id["refund"]["status"] in ("success", "interrupted") and by_id["refund"]["checks"]["interrupt"]["passed"]
    for example in first["examples"]:
        assert example["run_id"] and example["thread_id"] and example["latency_ms"] > 0
        assert example["tokens"] > 0 and example["cost_usd"] > 0
    stored = loom_env.data_dir.resolve() / "experiments" / f"{first['experiment_id']}.json"
    assert json.loads(stored.read_text()) == first
    assert "error analysis" in result.stdout and "classify" in result.stdout

    openai_server.add(*second_script())
    result, second = run_experiment(dataset, tmp_path / "second.json", "--min-score", "0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert failures(second) == {
        "wrong-answer": (["contains", "rubric"], "answer"),
        "refund-missed": (["interrupt", "nodes", "state"], "classify"),
        "greeting": (["not_contains"], "answer"),
    }

    compared = loom("eval", "compare", first["experiment_id"], str(tmp_path / "second.json"))
    assert compared.returncode == 0, compared.stdout + compared.stderr
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in compared.stdout.splitlines() if "│" in line]
    assert rows == [
        ["misrouted", "fail", "pass", "contains fail→pass, state fail→pass, tools fail→pass"],
        ["greeting", "pass", "fail", "not_contains pass→fail"],
    ], compared.stdout
    assert "2 example(s) changed" in compared.stdout

    tabled = loom("eval", "table", first["experiment_id"], str(tmp_path / "second.json"))  # what `make eval` prints
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in tabled.stdout.splitlines() if "│" in line]
    rows = [row for row in cells if row[0]]  # a long cell wraps onto lines of its own
    assert [row[:3] for row in rows] == [["orders", "orders.jsonl", "50.0% (3/6)"]] * 2, tabled.stdout
    assert rows[1][4] == "answer 2, classify 1", tabled.stdout


@pytest.mark.live
def test_what_an_experiment_cannot_run_is_a_clear_error_before_any_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"inputs": "hi", "expected": {"nodes_mode": "strict"}}\n')
    result = loom("eval", "run", str(bad), "--graph", "orders", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2 and "bad.jsonl:1: expected: nodes_mode is given without nodes" in result.stdout
    dataset = tmp_path / "orders.jsonl"
    dataset.write_text(json.dumps(DATASET[0]) + "\n")
    server = new_server(tmp_path / "server", fixtures=False, LOOM_GRAPHS_CONFIG=str(CONFIG)).start()
    try:
        unknown = loom("eval", "run", str(dataset), "--graph", "nope", "--url", server.url)
        no_judge = loom("eval", "run", str(dataset), "--graph", "orders", "--url", server.url)
    finally:
        server.stop()
    assert unknown.returncode == 2 and "the server has no assistant or graph 'nope'" in unknown.stdout
    assert no_judge.returncode == 2 and "examples ok have a rubric: give --judge provider:model" in no_judge.stdout


def test_compare_names_a_missing_experiment(loom_env: Settings) -> None:
    result = loom("eval", "compare", "nope", "also-nope")
    assert result.returncode == 2 and "no experiment 'nope'" in result.stdout
