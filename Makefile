# gfvc-ctc: every target sets up its own virtual environment in .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

MODEL ?= x265
ANCHOR ?=
TESTSET ?= demo
JOBS ?=
RUN ?=
# Anything else for Hydra, e.g. make ctc MODEL=x265 ARGS="codec.preset=slow"
ARGS ?=

.PHONY: help install weights ctc report test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project (editable) with its test tools

weights: $(STAMP)  ## fetch and cache the ImageNet backbones used by LPIPS and DISTS
	$(BIN)/ctc-weights

ctc: $(STAMP)  ## sweep MODEL and the anchor over TESTSET, score, report (MODEL= ANCHOR= TESTSET= JOBS= RUN= ARGS=)
	$(BIN)/ctc-run codec=$(MODEL) testset=$(TESTSET) $(if $(ANCHOR),anchor=$(ANCHOR)) \
		$(if $(JOBS),jobs=$(JOBS)) $(if $(RUN),run=$(RUN)) $(ARGS)

report: $(STAMP)  ## BD-rate tables and RD curves for a run (RUN=, default TESTSET's run)
	$(BIN)/ctc-report results/$(if $(RUN),$(RUN),$(TESTSET)) $(ARGS)

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .

bench: $(STAMP)  ## speed figures (IO, cached sweep, metrics, models), printed side by side
	$(BIN)/ctc-bench $(ARGS)

clean:  ## remove the virtual environment and caches (results are kept)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
