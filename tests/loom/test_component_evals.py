"""``loom eval components`` against the scripted OpenAI-compatible model: the router's, triage's and the
planner's decisions alone, scored per decision, with the failing examples named and a threshold miss as exit
code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loom.cli import main
from loom.evals import load_thresholds
from tests.fixtures import openai_server as scripted
from tests.fixtures.openai_server import ScriptedOpenAI

LOOM = str(Path(sys.executable).parent / "loom")
ROUTER = [
    ("Write a blog post about green tea", "content_writer"),  # the keyword stage decides
    ("Help me with my thing", "coder"),  # the model answers image_generator: the one failure
    ("Do the usual for Monday", "workspace_agent"),  # the model answers right
]
TRIAGE = [
    ("My payment failed and my card was declined", "billing", "high"),  # keywords, priority cue
    ("Something odd happened", "technical", "low"),  # the model: right category, wrong priority
]

PLANNER = [  # the model's plan: valid with the expected tool; then one naming a tool that does not exist
    ("Compute 2 to the power of 10", {"id": "step_1", "description": "compute", "tool": "run_python",
                                      "arguments": {"code": "print(2**10)"}, "depends_on": []}),
    ("Tell me a joke about clouds", {"id": "step_1", "description": "joke", "tool": "tell_joke",
                                     "arguments": {}, "depends_on": []}),
]  # fmt: skip


def write_sets(root: Path) -> Path:
    (root / "assistant").mkdir(parents=True)
    (root / "support").mkdir()
    (root / "plan_execute").mkdir()
    plans = [
        {"inputs": text, "expected": {"nodes": ["planner", "validate"], "tools": ["run_python"]}} for text, _ in PLANNER
    ]
    (root / "plan_execute" / "holdout.jsonl").write_text("".join(json.dumps(row) + "\n" for row in plans))
    router = [{"inputs": text, "expected": {"state": {"route.specialist": label}}} for text, label in ROUTER]
    triage = [
        {"inputs": text, "expected": {"state": {"triage.category": category, "triage.priority": priority}}}
        for text, category, priority in TRIAGE
    ]
    for path, rows in ((root / "assistant" / "holdout.jsonl", router), (root / "support" / "holdout.jsonl", triage)):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return root


def script(server: ScriptedOpenAI) -> None:
    server.add(
        *(scripted.structured({"steps": [step]}, when=text) for text, step in PLANNER),
        scripted.structured({"label": "image_generator", "reason": "a picture"}, when="Help me with my thing"),
        scripted.structured({"label": "workspace_agent", "reason": "the calendar"}, when="Do the usual"),
        scripted.structured(
            {"category": "technical", "priority": "medium", "suggested_agent": "technical", "reasoning": "odd"},
            when="Something odd happened",
        ),
    )


def run(evals: Path, tmp_path: Path, thresholds: str) -> tuple[int, list[dict[str, object]]]:
    floors = tmp_path / "thresholds.toml"
    floors.write_text(thresholds, encoding="utf-8")
    out = tmp_path / "components.json"
    argv = ["eval", "components", "--split", "holdout", "--evals", str(evals), "--thresholds", str(floors)]
    code = main([*argv, "--json", str(out)])
    return code, json.loads(out.read_text(encoding="utf-8"))


def test_component_evals_score_each_decision_and_fail_below_a_threshold(
    openai_server: ScriptedOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evals = write_sets(tmp_path / "evals")
    script(openai_server)
    floors = '[router]\n"route.specialist" = 0.6\n[triage]\n"triage.category" = 1.0\n"triage.priority" = 0.5\n'
    code, results = run(evals, tmp_path, floors)
    assert code == 0, capsys.readouterr().out
    router, triage, planner = results
    assert router["accuracy"] == {"route.specialist": pytest.approx(2 / 3)}
    assert (router["first_stage"], router["first_stage_decided"], router["first_stage_correct"]) == ("keywords", 1, 1)
    assert [(v["request"], v["got"], v["stage"]) for v in router["verdicts"] if v["got"] != v["expected"]] == [
        ("Help me with my thing", {"route.specialist": "image_generator"}, "llm")
    ]
    assert triage["accuracy"] == {"triage.category": 1.0, "triage.priority": 0.5}
    assert [v["stage"] for v in triage["verdicts"]] == ["keywords", "llm"]
    assert planner["accuracy"] == {"plan.valid": 0.5, "plan.tools": 0.5}
    joke = planner["verdicts"][1]
    assert joke["got"]["plan.tools"] == "tell_joke" and "unknown tool 'tell_joke'" in joke["got"]["plan.valid"]

    script(openai_server)  # again, in a process of its own (the first run's model clients belong to its loop)
    floors = tmp_path / "thresholds.toml"
    floors.write_text('[router]\n"route.specialist" = 0.9\n', encoding="utf-8")
    argv = ["eval", "components", "--component", "router", "--split", "holdout", "--evals", str(evals)]
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([LOOM, *argv, "--thresholds", str(floors)], capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "router route.specialist: 66.7% is below 90.0%" in done.stdout
    assert "Help me with my thing" in done.stdout and "image_generator" in done.stdout


def test_thresholds_name_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    path.write_text('[router]\n"route.specialist" = 0.8\n[triage]\n"triage.priority" = 0.5\n', encoding="utf-8")
    assert load_thresholds(path) == {"router": {"route.specialist": 0.8}, "triage": {"triage.priority": 0.5}}
    for text, named in (
        ('[planer]\n"x" = 0.5\n', "planer"),
        ('[router]\n"route.stage" = 0.5\n', "router.route.stage"),
        ('[router]\n"route.specialist" = 2\n', "router.route.specialist"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=named):
            load_thresholds(path)


def test_the_committed_thresholds_are_valid() -> None:
    floors = load_thresholds(Path(__file__).parents[2] / "evals" / "thresholds.toml")
    assert set(floors) == {"router", "triage", "planner"}
