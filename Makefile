# tpo-bench: set-up and the two main commands. Everything installs into .venv
# from this repository's own files; torch is pinned by .ci/constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: install main test test-all perf clean-runs

$(BIN)/bench: pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c .ci/constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c .ci/constraints.txt -e ".[dev,cluster,mnist,offline,llm,trl]"
	touch $@

install: $(BIN)/bench

# Main job: real sweeps on the embedded defaults, each ending in a printed table and its
# cell-by-cell comparison with the committed one in results/ (W&B mirror offline; no
# account, GPU or internet). Tables and figures go to runs/<experiment>/<scale>/report/
# (ignored by git); results/ is only written by `bench-report NAME --scale S --publish`.
main: install
	$(BIN)/bench experiment=tabular_single scale=paper
	$(BIN)/bench experiment=tabular_multi scale=quick

# The test suite (what CI runs).
test: install
	$(BIN)/python -m pytest

test-all: install
	$(BIN)/python -m pytest -m ""

clean-runs:
	rm -rf runs/
