# One command to set up and run the demo, one to set up and run the checks.
# Both create (or reuse) .venv and install with pip, torch pinned by constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_MITDB := ../shared/data/mitdb
export BEATLAB_DATA_DIR ?= data

.PHONY: setup data demo test lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

data: setup
	if [ -d $(SHARED_MITDB) ]; then $(BIN)/beatlab data fetch --from $(SHARED_MITDB); \
	else $(BIN)/beatlab data fetch; fi
	$(BIN)/beatlab data build

DEMO := runs/demo

# build data -> train the default model on the intra split -> evaluate once on test -> report
demo: data
	$(BIN)/beatlab train --config configs/demo.toml --runs-dir runs --name demo --replace
	$(BIN)/beatlab evaluate $(DEMO)
	$(BIN)/beatlab report $(DEMO) --out reports/demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
