# learn_reason: `make demo` and `make test` are all a new user needs (see README.md).
#
# Every target first makes sure .venv exists with the one pinned install (requirements.txt) and a Jupyter kernel
# named `learn-reason` registered inside it. A second run reinstalls nothing unless requirements.txt changed
# since the last install (nbdev-export rewrites pyproject.toml on every run, so it cannot be a prerequisite).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := learn-reason

# The project's reference copy of the benchmark files, beside a developer's checkout. Tests and notebooks use it
# when it is there (through the settings' environment variables) and skip what needs it when it is not.
REFERENCE_DATA ?= ../shared/data
ifneq ($(wildcard $(REFERENCE_DATA)/benchmarks),)
REFERENCE_ENV := LEARN_REASON_DATA_DIR=$(abspath $(REFERENCE_DATA)/benchmarks) LEARN_REASON_SPLITS_DIR=$(abspath $(REFERENCE_DATA)/finetune_cot/splits) LEARN_REASON_FEW_SHOT_PROMPTS=$(abspath $(REFERENCE_DATA)/finetune_cot/few_shot_cot_prompts.json) LEARN_REASON_REFERENCE_DATA=$(abspath $(REFERENCE_DATA))
endif

# Tests never reach a model or dataset hub, and torch stays on one thread so timings stay stable.
TEST_ENV := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0 $(REFERENCE_ENV)

.PHONY: help install demo test lint sync nbtest pytest docs readme lab bench gpu-check clean

help:
	@echo "make demo    create .venv if missing, then run the offline demo sweep (papers_repro/sweeps/demo.yaml) and write its report"
	@echo "make test    create .venv if missing, then the lint, notebook tests, the sync check and pytest"
	@echo "make lint    ruff on the library: lines of at most 120 characters, no unused imports ([tool.ruff])"
	@echo "make docs    build the documentation site into _docs/ (offline, no Quarto needed)"
	@echo "make readme  regenerate README.md from nbs/index.ipynb"
	@echo "make lab     JupyterLab on the project's kernel (nbs/ and papers_repro/)"
	@echo "make bench   teacher, student and demo-sweep benchmarks (bench/results.json)"
	@echo "make gpu-check  on a CUDA machine: bf16 training (full, LoRA, 2-GPU torchrun), evaluation speed (bench/gpu.json)"

install: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (learn-reason)" >/dev/null
	@touch $(STAMP)
	@echo "installed into $(VENV); Jupyter kernel '$(KERNEL)' registered"

# The testbed's experiments at one seed (papers_repro/sweeps/demo.yaml), then runs/demo/report.html, which opens with the claims.
# Finished cells are kept, so a second `make demo` only redraws; `rm -rf runs/demo` starts it over.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error OMP_NUM_THREADS=1 \
		$(BIN)/learn-reason repro papers_repro/sweeps/demo.yaml --resume

# The library passes ruff as pyproject.toml's [tool.ruff] sets it: lines of at most 120 characters, no unused imports.
# Fix a finding in the notebook the module is exported from (nbs/), then run nbdev-export.
lint: $(STAMP)
	$(BIN)/python .ci/lint.py

# The library must be what nbdev-export makes of the notebooks, the notebooks must be clean, and README.md must be
# what nbs/index.ipynb renders to. The check runs all three in place, compares, and puts every file back as it was.
sync: $(STAMP)
	$(TEST_ENV) $(BIN)/python tools/docs.py sync

nbtest: $(STAMP)
	$(TEST_ENV) $(BIN)/nbdev-test --n-workers 2 --timing

# Two workers (pytest-xdist), as the notebook tests have: CI has two cores. One file per worker, so a file's
# session fixtures (the docs site, a Ray instance) are built once.
pytest: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -ra -m "not slow" -n 2 --dist loadfile

test: $(STAMP)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory sync
	$(MAKE) --no-print-directory nbtest
	$(MAKE) --no-print-directory pytest

docs: $(STAMP)
	$(TEST_ENV) $(BIN)/python tools/docs.py docs

readme: $(STAMP)
	$(TEST_ENV) $(BIN)/python tools/docs.py readme

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf _proc _docs _exec .pytest_cache

bench: $(STAMP)
	$(TEST_ENV) $(BIN)/python bench/teacher.py
	$(TEST_ENV) $(BIN)/python bench/student.py
	$(TEST_ENV) $(BIN)/python bench/demo.py

# On a machine with a CUDA GPU (never needed by `make test`): bf16 training, full and LoRA, a 2-GPU torchrun run when
# two are present, evaluation throughput; written to bench/gpu.json. STUDENT=folder when SmolLM2 is not in the cache.
gpu-check: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error \
		$(BIN)/python bench/gpu.py $(if $(STUDENT),--student $(STUDENT))
