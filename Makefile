# colorgan-repro. A fresh clone needs two commands: `make reproduce` and `make test`.
# Both create .venv first when it is missing (Python 3.11, exact torch/torchvision pins).

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup test test-fast reproduce bench clean-cache

setup: $(STAMP)

# Re-installs when pyproject.toml (the one list of dependencies) changes.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# Placeholder until the book pipeline lands: train on the bundled samples, then evaluate.
reproduce: setup
	$(PY) -m colorgan train --image-size 64 --num-steps 200 --run-dir results/smoke/runs/colorgan --resume
	$(PY) -m colorgan evaluate results/smoke/runs/colorgan

# Speed of every variant in one run -> results/bench/<device>.{json,md}. On CPU it runs at 32x32;
# on a GPU at the paper's 256x256. More: make bench BENCH_ARGS="--batch-size 64 --tag b64"
bench: setup
	$(PY) -m colorgan bench $(BENCH_ARGS)

clean-cache:
	rm -rf .cache
