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
# where runs go (ctc-run's results_dir): results/<run>, run = the test set's name, -f<N> for N frames
RESULTS ?= results
# Anything else for Hydra, e.g. make ctc MODEL=x265 ARGS="codec.preset=slow"
ARGS ?=
# make vtm: a git URL (built at VTM_TAG), a VTM source folder, or a source archive (checked against
# VTM_SHA256 when given). The build goes to ~/.cache/gfvc-ctc/vtm/VTM-<version> ($$GFVC_TOOLS overrides).
VTM_SRC ?= https://vcgit.hhi.fraunhofer.de/jvet/VVCSoftware_VTM.git
VTM_TAG ?= VTM-22.2
VTM_SHA256 ?=
# make test builds the real VTM from the shared source archive, when it is there, for the real-VTM tests.
SHARED ?= $(or $(GFVC_SHARED),../shared)
SHARED_VTM := $(SHARED)/vtm/VVCSoftware_VTM-22.2.tar.gz
SHARED_VTM_SHA256 := a8d9bcb25f1a31f3ef93a5fc520035a135f6d008165986e512c8ff5ebf9a2e90
# ... and VTM 23.13, the reference software of the generative face video SEI (docs/gfv-sei.md)
SHARED_VTM_SEI := $(SHARED)/vtm/VVCSoftware_VTM-23.13.tar.gz
SHARED_VTM_SEI_SHA256 := 07dbfd090ef38c1c6399f3ce555b70f6ecce5ed90ed46b2a744a61a99a23f5cb

.PHONY: help install lock vtm weights ctc report test lint bench mutants clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The exact versions (with their hashes) the suite was tested with; `make lock` regenerates it.
LOCK := requirements.lock
LOCK_PLATFORM := --python-version 3.11 --python-platform x86_64-manylinux_2_28

$(STAMP): $(LOCK) setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)  ## create .venv with exactly the lock's packages and the project (editable)

lock: $(STAMP)  ## resolve requirements.lock again from setup.cfg (after changing a dependency there)
	$(BIN)/uv pip compile setup.cfg --extra dev --generate-hashes $(LOCK_PLATFORM) \
		-c lock-constraints.txt --custom-compile-command 'make lock' -o $(LOCK)

vtm:  ## build VTM's encoder and decoder into the machine's cache (VTM_SRC= VTM_TAG= VTM_SHA256=)
	$(PYTHON) -m anchors.vtm_build $(VTM_SRC) --tag $(VTM_TAG) $(if $(VTM_SHA256),--sha256 $(VTM_SHA256))

weights: $(STAMP)  ## fetch and cache the ImageNet backbones used by LPIPS and DISTS
	$(BIN)/ctc-weights

ctc: $(STAMP)  ## sweep MODEL and the anchor over TESTSET, score, report (MODEL= ANCHOR= TESTSET= JOBS= RUN= ARGS=)
	$(BIN)/ctc-run codec=$(MODEL) testset=$(TESTSET) $(if $(ANCHOR),anchor=$(ANCHOR)) \
		$(if $(JOBS),jobs=$(JOBS)) $(if $(RUN),run=$(RUN)) results_dir=$(RESULTS) $(ARGS)

report: $(STAMP)  ## BD-rate tables and RD curves of RUN, default every run of TESTSET (<TESTSET>, <TESTSET>-f<N>)
	@runs="$(if $(RUN),$(RESULTS)/$(RUN),$(wildcard $(RESULTS)/$(TESTSET) $(RESULTS)/$(TESTSET)-f*))"; \
	if [ -z "$$runs" ]; then echo "make report: no run of test set $(TESTSET) in $(RESULTS)/ (make ctc first, or RUN=NAME)" >&2; exit 2; fi; \
	for run in $$runs; do echo "$(BIN)/ctc-report $$run $(ARGS)"; $(BIN)/ctc-report $$run $(ARGS) || exit 1; done

test: $(STAMP)  ## run the test suite (builds VTM from ../shared/vtm once per machine)
	@if [ -f $(SHARED_VTM) ]; then \
		$(MAKE) --no-print-directory vtm VTM_SRC=$(SHARED_VTM) VTM_SHA256=$(SHARED_VTM_SHA256); \
	else echo "no $(SHARED_VTM): the real-VTM tests will be skipped"; fi
	@if [ -f $(SHARED_VTM_SEI) ]; then \
		$(MAKE) --no-print-directory vtm VTM_SRC=$(SHARED_VTM_SEI) VTM_SHA256=$(SHARED_VTM_SEI_SHA256); \
	else echo "no $(SHARED_VTM_SEI): the GFV SEI conformance tests will be skipped"; fi
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)  ## ruff: lint and formatting (ruff format . fixes the latter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)  ## speed figures (IO, cached sweep, metrics, models), printed side by side
	$(BIN)/ctc-bench $(ARGS)

mutants: $(STAMP)  ## mutation testing of tests/mutants.toml's modules (MODULES=); report in results/mutants/
	$(BIN)/python tests/mutants.py $(MODULES) $(if $(JOBS),--jobs $(JOBS))

clean:  ## remove the virtual environment and caches (results are kept)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
