# Two entry points for newcomers: `make run` and `make test`. Each creates .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format eval-routing clean

$(VENV)/.installed: pyproject.toml uv-overrides.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip uv
	# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on CI here) every process, each server a test
	# starts included, would otherwise compile its imports again: ~7 s of CPU per start on the 2-core machine
	$(VENV)/bin/uv pip install -p $(PY) --compile-bytecode --override uv-overrides.txt -e '.[dev]'  # see uv-overrides.txt
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/loom serve

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

eval-routing: $(VENV)/.installed
	$(VENV)/bin/loom eval-routing

clean:
	rm -rf $(VENV) .loom .mypy_cache .ruff_cache .pytest_cache
