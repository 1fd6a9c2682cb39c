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

# Until `sepgraph demo` (training included) exists: the zoo, then a full analysis and report of a
# randomly initialised (seeded) resnet20 on the embedded digits; no download needed.
demo: install
	$(BIN)/sepgraph models
	$(BIN)/sepgraph analyze --model resnet20 --data digits:all --normalize none --vertices 500 --edges 3000 \
		--lu-batch-size 100 --out results/demo --overwrite

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
