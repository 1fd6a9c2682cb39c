# Two commands for a newcomer: `make demo` and `make test`. Each creates the virtual
# environment and installs sepgraph into it first when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch build these machines install offline; pip finds other builds elsewhere.
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Train, analyse, prune and report on the embedded handwritten digits: no download, no GPU.
demo: install
	$(BIN)/sepgraph demo

test: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
