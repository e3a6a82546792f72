# Two entry points for newcomers: `make run` and `make test`. Each creates .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format eval eval-components clean

PORT ?= 8123
# see uv-overrides.txt for the override
INSTALL = $(VENV)/bin/uv pip install -p $(PY) --compile-bytecode --override uv-overrides.txt

# What serving needs (PostgreSQL's drivers included, for scale mode); the dev tools come with the first
# `make test` or `make lint`.
$(VENV)/.runtime: pyproject.toml uv-overrides.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip uv
	# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on CI here) every process, each server a test
	# starts included, would otherwise compile its imports again: ~7 s of CPU per start on the 2-core machine
	$(INSTALL) -e '.[postgres,pdf]'
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(INSTALL) -e '.[dev]'
	touch $@

run: $(VENV)/.runtime
	$(VENV)/bin/loom serve --port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Every graph's golden set end to end (runs through a Loom server) on the embedded default, then one table
# of them all (the README's). Long, not in CI; SPLIT=golden for the tuning parts. Rubrics are judged by the
# embedded model too, which is weak (README, Evaluating agents): JUDGE=openai:gpt-4o-mini for figures to trust.
SPLIT ?= holdout
JUDGE ?= local:smollm2
EVAL_GRAPHS ?= assistant support plan_execute supervisor pipeline code_reflection
eval: $(VENV)/.installed
	mkdir -p .loom/evals
	for graph in $(EVAL_GRAPHS); do \
		$(VENV)/bin/loom eval run evals/$$graph/$(SPLIT).jsonl --graph $$graph --judge $(JUDGE) \
			--json .loom/evals/$$graph.json || exit 1; \
	done
	$(VENV)/bin/loom eval table $(foreach graph,$(EVAL_GRAPHS),.loom/evals/$(graph).json)

# The router's, triage's and the planner's decisions alone on the held-out sets (the embedded default, about
# 75 s on 2 cores); exits 1 below evals/thresholds.toml. .ci/run runs it.
eval-components: $(VENV)/.installed
	$(VENV)/bin/loom eval components --split holdout --thresholds evals/thresholds.toml

clean:
	rm -rf $(VENV) .loom .mypy_cache .ruff_cache .pytest_cache
