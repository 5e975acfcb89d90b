# One command to set up and run the demo, one to set up and run the checks.
# Both create (or reuse) .venv and install with pip, every package pinned by constraints.txt
# (torch to its CPU build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED := ../shared/data
export BEATLAB_DATA_DIR ?= data

.PHONY: setup data demo demo-intra test lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# MIT-BIH and SVDB, copied from ../shared/data where it exists, else downloaded from PhysioNet
data: setup
	for db in mitdb svdb; do \
	  if [ -d $(SHARED)/$$db ]; then $(BIN)/beatlab data fetch --db $$db --from $(SHARED)/$$db; \
	  else $(BIN)/beatlab data fetch --db $$db; fi || exit 1; \
	  $(BIN)/beatlab data build --db $$db || exit 1; \
	done

# the model for new recordings, trained on MIT-BIH DS1 (each run validated on held-out DS1
# patients): three seeds of the CNN and the tree model on each of the two leads, joined into one
# ensemble that weighs S x4 at decision and calls no beat S in atrial fibrillation (both chosen on
# DS1 patients: benchmarks/patient_cv.py --weigh S --mean-of, benchmarks/af_gate.py --edges
# inside), evaluated once on DS2 and on every beat of SVDB
LEAD2 := V1,V2,V3,V4,V5,V6,ECG2
demo: data
	for seed in 0 1 2; do \
	  $(BIN)/beatlab train --config configs/new_patients.toml --set seed=$$seed \
	    --runs-dir runs --name new_patients_s$$seed --replace || exit 1; \
	done
	$(BIN)/beatlab train --config configs/new_patients_trees.toml \
	  --runs-dir runs --name new_patients_trees --replace
	$(BIN)/beatlab train --config configs/new_patients_trees.toml --set lead=$(LEAD2) \
	  --runs-dir runs --name new_patients_trees_lead2 --replace
	$(BIN)/beatlab ensemble runs/new_patients_s0 runs/new_patients_s1 runs/new_patients_s2 \
	  runs/new_patients_trees runs/new_patients_trees_lead2 \
	  --decision-weights 1,4,1,1,1 --af-gate --runs-dir runs --name new_patients --replace
	$(BIN)/beatlab evaluate runs/new_patients
	$(BIN)/beatlab evaluate runs/new_patients --db svdb
	$(BIN)/beatlab report runs/new_patients --out reports/demo

# the study's paradigm: the default model on the intra split (beats of seen patients)
demo-intra: data
	$(BIN)/beatlab train --config configs/demo.toml --runs-dir runs --name demo --replace
	$(BIN)/beatlab evaluate runs/demo
	$(BIN)/beatlab evaluate runs/demo --db svdb
	$(BIN)/beatlab report runs/demo --out reports/demo-intra

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
