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

.PHONY: help install demo test sync nbtest pytest docs readme lab bench clean

help:
	@echo "make demo    create .venv if missing, then run the offline default (gold-rationale scoring table)"
	@echo "make test    create .venv if missing, then notebook tests, the sync check and pytest"
	@echo "make docs    build the documentation site into _docs/ (offline, no Quarto needed)"
	@echo "make readme  regenerate README.md from nbs/index.ipynb"
	@echo "make lab     JupyterLab on the project's kernel"
	@echo "make bench   teacher and student benchmarks (bench/results.json)"

install: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (learn-reason)" >/dev/null
	@touch $(STAMP)
	@echo "installed into $(VENV); Jupyter kernel '$(KERNEL)' registered"

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(REFERENCE_ENV) $(BIN)/learn-reason demo

# The library must be what nbdev-export makes of the notebooks, the notebooks must be clean, and README.md must be
# what nbs/index.ipynb renders to. The check runs all three in place, compares, and puts every file back as it was.
sync: $(STAMP)
	$(TEST_ENV) $(BIN)/learn-reason sync

nbtest: $(STAMP)
	$(TEST_ENV) $(BIN)/nbdev-test --n-workers 2 --timing

pytest: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -ra -m "not slow"

test: $(STAMP)
	$(MAKE) --no-print-directory sync
	$(MAKE) --no-print-directory nbtest
	$(MAKE) --no-print-directory pytest

docs: $(STAMP)
	$(TEST_ENV) $(BIN)/learn-reason docs

readme: $(STAMP)
	$(TEST_ENV) $(BIN)/learn-reason readme

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=nbs $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf _proc _docs _exec .pytest_cache

bench: $(STAMP)
	$(TEST_ENV) $(BIN)/python bench/teacher.py
	$(TEST_ENV) $(BIN)/python bench/student.py
