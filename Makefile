# The two commands of the quick start, `make demo` and `make test`, do all the set-up themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
REPO ?= $(CURDIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo bench clean

install: $(VENV)/.installed

# torch is pinned to the CPU build first: an unpinned one (pulled by sentence-transformers)
# resolves to a CUDA build of several GB.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all,dev]'
	$(BIN)/python scripts/fetch_tools.py  # helm and kubectl for the chart tests, into tools/bin
	touch $@

test: install
	$(BIN)/pytest

demo: install
	$(BIN)/python -m codebase_gateway.demo "$(REPO)"

bench: install
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
