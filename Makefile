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

.PHONY: setup browser test test-fast mutation reproduce book ablations rejudge bench bench-cli gpu-check data-voc data-voc-mini clean-cache

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

# Mutation testing of the numbers core (not part of `make test`; about 25 min on 2 cores): mutmut changes the
# modules listed in pyproject's [tool.mutmut] one edit at a time, runs the tests that call the changed function,
# and writes results/mutation/ (kill rate per module, command, commit, time, every survivor with its account).
# MUTANTS='colorgan.method.color.*' runs a subset; MUTATION_JOBS=N test processes at once (default: every core).
# mutmut rather than cosmic-ray: it runs, per mutant, only the tests that called the mutated function (recorded in
# one clean run), which is what fits the hour on this CPU; cosmic-ray runs the whole test command for every mutant.
MUTANTS       ?=
MUTATION_JOBS ?=
mutation: setup
	$(PY) -m colorgan mutation $(if $(MUTATION_JOBS),--jobs $(MUTATION_JOBS)) $(foreach m,$(MUTANTS),'$(m)')

# make reproduce [PROFILE=smoke|voc-mini|paper] [DATA=/path] [PARAMS="name=value ..."] [NPROC=4] [WORKERS=2] [VERBOSE=1]
# NPROC: train each stage on N data-parallel processes (torchrun, one per GPU). VERBOSE=1: papermill's per-cell
# log and the notebook kernels' warnings too.
# WORKERS: independent runs at once (local: 0 = one per GPU, 1 on a CPU); EXECUTOR=slurm: one Slurm job per run
# (PARTITION, ACCOUNT, TIME_MIN per job, GPUS_PER_JOB); colorgan/experiments/executor.py
PROFILE ?= smoke
DATA    ?=
PARAMS  ?=
NPROC   ?= 1
VERBOSE ?=
VERBOSE_FLAG := $(if $(filter-out 0,$(VERBOSE)),-v)
WORKERS ?= 0
EXECUTOR ?= local
EXECUTOR_FLAGS = --executor $(EXECUTOR) --workers $(WORKERS) $(if $(PARTITION),--partition $(PARTITION)) \
	$(if $(ACCOUNT),--account $(ACCOUNT)) $(if $(TIME_MIN),--time-min $(TIME_MIN)) \
	$(if $(GPUS_PER_JOB),--gpus-per-job $(GPUS_PER_JOB))
# PARAMS reaches the command through the environment, exactly as typed: re-quoting it here ("$(PARAMS)") would
# strip the quotes of PARAMS='table1.external_runs=["a","b"]'
export PARAMS
reproduce: setup
	$(PY) -m colorgan reproduce --profile $(PROFILE) --data "$(DATA)" --params "$$PARAMS" --nproc $(NPROC) $(VERBOSE_FLAG) $(EXECUTOR_FLAGS)

# Re-render the book from the executed notebooks (no stage runs).
book: setup
	$(PY) -m colorgan reproduce --profile $(PROFILE) --data "$(DATA)" --params "$$PARAMS" --book-only

# make ablations: the offline smoke ablation (built-in sample photos, 2 seeds; minutes on a CPU), as make reproduce
# runs it. make ablations PROFILE=ablation-mini [DATA=/path/to/voc-mini, default data/voc-mini]: every variant x 3
# seeds on voc-mini; PROFILE=study: the study-scale ablation. Results: results/<profile>/ablation/ (printed at the end).
ablations: setup
	$(PY) -m colorgan ablations --profile $(PROFILE) --data "$(DATA)" --params "$$PARAMS" $(VERBOSE_FLAG) $(EXECUTOR_FLAGS)

# Re-judge the committed study from results/study/per_image_metrics.csv and its ablation from
# results/study/ablation/ablation_per_image.csv.gz (no training): their tables, charts and verdicts by
# today's claims (colorgan/experiments/claims.toml) and rule (colorgan/experiments/verdicts.py), and the README's generated results block
rejudge: setup
	$(PY) -c "from colorgan.experiments import study; from colorgan.report import summary; study.rejudge('results/study'); summary.update_readme('README.md', 'results/study')"

# PASCAL VOC2012 into data/VOCdevkit (torchvision download + MD5 check; offline it says what to place where)
data-voc: setup
	$(PY) -m colorgan data-voc --root data

# voc-mini (2,250 VOC2012 photos at 256x256: the voc-mini and ablation-mini profiles' data) into data/voc-mini,
# made from a VOC2012 copy; every file is checked against colorgan/tools/voc_mini_manifest.csv
data-voc-mini: setup
	$(if $(DATA),,$(error pass DATA=/path/to/VOCdevkit, a VOC2012 copy (make data-voc fetches one)))
	$(PY) -m colorgan data-voc-mini --voc "$(DATA)" --out data/voc-mini

# Speed of every variant in one run -> results/bench/<device>.{json,md}. On CPU it runs at 32x32;
# on a GPU at the paper's 256x256. More: make bench BENCH_ARGS="--batch-size 64 --tag b64"
bench: setup
	$(PY) -m colorgan bench $(BENCH_ARGS)

# How fast the command line answers (--help, each command's --help, a mistyped flag): median of 5 fresh starts.
# BENCH_CLI_ARGS="--repo /path/to/older/checkout" times another checkout (before/after).
bench-cli: setup
	$(PY) benchmarks/cli_startup.py $(BENCH_CLI_ARGS)

# One prepared GPU check: every speed switch, method and DDP + resume, then the bench, each section in a child
# process stopped at its deadline, so the whole check ends within a hard limit (8 min; --time-budget-minutes).
# -> results/gpu-check/<device>.{json,md}, rewritten after every section. Exit 0 ok, 1 failed, 3 incomplete.
# GPU_CHECK_ARGS=--tiny: the CPU form CI runs.
gpu-check: setup
	$(PY) -m colorgan gpu-check $(GPU_CHECK_ARGS)

clean-cache:
	rm -rf .cache
