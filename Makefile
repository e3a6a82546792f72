# Two entry points for newcomers: `make run` and `make test`. Each creates .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
# llama-cpp-python compiles llama.cpp from source; the multimodal tools are not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DMTMD_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF

.PHONY: run test lint format eval-routing clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install -p $(PY) -e '.[dev]'
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
