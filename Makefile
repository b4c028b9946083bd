# colorgan-repro. A fresh clone needs two commands: `make reproduce` and `make test`.
# Both install the project first when needed: into the active environment when one is active (a
# virtualenv: VIRTUAL_ENV; a conda env other than base: CONDA_PREFIX, e.g. after
# `conda env create -f environment.yml && conda activate colorgan-repro`), else into .venv, created here
# (Python 3.11, exact torch/torchvision pins). ENV=/path/to/env chooses one explicitly.

PYTHON ?= python3.11
VENV   := .venv
ifdef VIRTUAL_ENV
ENV ?= $(VIRTUAL_ENV)
else ifneq ($(CONDA_PREFIX),)
ifneq ($(CONDA_DEFAULT_ENV),base)
ENV ?= $(CONDA_PREFIX)
endif
endif
ENV    ?= $(VENV)
PY     := $(ENV)/bin/python
STAMP  := $(ENV)/$(if $(filter $(VENV),$(ENV)),.installed-stamp,.colorgan-repro-installed)

.PHONY: setup browser test test-fast mutation reproduce book ablations bench gpu-check data-voc data-voc-mini clean-cache

setup: $(STAMP)
	@echo "environment: $(ENV)"

# Re-installs when pyproject.toml (the one list of dependencies) changes. Only .venv is created here.
$(STAMP): pyproject.toml
ifeq ($(ENV),$(VENV))
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
else
	@test -x $(PY) || { echo "error: $(PY) not found; ENV=$(ENV) is not a Python environment"; exit 1; }
endif
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

test: setup browser
	$(PY) -m pytest

# Debian's Chromium + ChromeDriver for the rendered-book test (skipped with a reason where absent).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "warning: could not install chromium; the book rendering test will be skipped"

test-fast: setup
	$(PY) -m pytest -m "not slow"

# Mutation testing of the numbers core (not part of `make test`; long, hours on 2 cores): mutmut changes the
# modules listed in pyproject's [tool.mutmut] one edit at a time, runs the tests that call the changed function,
# and writes results/mutation/ (kill rate per module, command, commit, time, every survivor with its account).
# MUTANTS='colorgan.color.*' runs a subset; MUTATION_JOBS=N test processes at once (default: every core).
MUTANTS       ?=
MUTATION_JOBS ?=
mutation: setup
	$(PY) -m colorgan mutation $(if $(MUTATION_JOBS),--jobs $(MUTATION_JOBS)) $(foreach m,$(MUTANTS),'$(m)')

# make reproduce [PROFILE=smoke|voc-mini|paper] [DATA=/path] [PARAMS="name=value ..."] [NPROC=4]
# NPROC: train each stage on N data-parallel processes (torchrun, one per GPU)
PROFILE ?= smoke
DATA    ?=
PARAMS  ?=
NPROC   ?= 1
reproduce: setup
	$(PY) -m colorgan reproduce --profile $(PROFILE) --data "$(DATA)" --params "$(PARAMS)" --nproc $(NPROC)

# Re-render the book from the executed notebooks (no stage runs).
book: setup
	$(PY) -m colorgan reproduce --profile $(PROFILE) --data "$(DATA)" --params "$(PARAMS)" --book-only

# make ablations PROFILE=ablation-mini [DATA=/path/to/voc-mini, default data/voc-mini]: every variant x 3 seeds, table + chart
ablations: setup
	$(PY) -m colorgan ablations --profile $(if $(filter smoke,$(PROFILE)),ablation-mini,$(PROFILE)) --data "$(DATA)" --params "$(PARAMS)"

# PASCAL VOC2012 into data/VOCdevkit (torchvision download + MD5 check; offline it says what to place where)
data-voc: setup
	$(PY) -m colorgan data-voc --root data

# voc-mini (2,250 VOC2012 photos at 256x256: the voc-mini and ablation-mini profiles' data) into data/voc-mini,
# made from a VOC2012 copy; every file is checked against colorgan/voc_mini_manifest.csv
data-voc-mini: setup
	$(if $(DATA),,$(error pass DATA=/path/to/VOCdevkit, a VOC2012 copy (make data-voc fetches one)))
	$(PY) -m colorgan data-voc-mini --voc "$(DATA)" --out data/voc-mini

# Speed of every variant in one run -> results/bench/<device>.{json,md}. On CPU it runs at 32x32;
# on a GPU at the paper's 256x256. More: make bench BENCH_ARGS="--batch-size 64 --tag b64"
bench: setup
	$(PY) -m colorgan bench $(BENCH_ARGS)

# One prepared GPU check (<= 8 min on one H100/H200): every speed switch, method and DDP + resume, then the
# bench -> results/gpu-check/<device>.{json,md}. GPU_CHECK_ARGS=--tiny: the CPU form CI runs.
gpu-check: setup
	$(PY) -m colorgan gpu-check $(GPU_CHECK_ARGS)

clean-cache:
	rm -rf .cache
