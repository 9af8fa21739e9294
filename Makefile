# The two commands of the quick start, `make demo` and `make test`, do all the set-up themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
REPO ?= $(CURDIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

LOCK := requirements.lock
LOCKED_EXTRAS := --extra local --extra embedded --extra gateway --extra operator --extra dev

.PHONY: install lint test test-fast demo bench lock clean

install: $(VENV)/.installed

# Every dependency comes from requirements.lock, pinned with hashes, so two installs a week apart
# are the same; the project itself is installed on top, editable, without resolving again.
# torch there is the CPU build (+cpu): an unpinned one resolves to a CUDA build of several GB.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python scripts/fetch_tools.py  # helm and kubectl for the chart tests, into tools/bin
	touch $@

# Static checks first (seconds, with their caches): ruff, mypy on the three packages, and the
# import-linter contracts that keep the layers of docs/architecture.md. Configured in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite runs in TEST_WORKERS processes (pytest-xdist; three beat two on a 2-core machine, as
# much of the suite waits on child processes), each with its own embedded PostgreSQL,
# model and emulator; a test module stays in one process, so its shared fixtures are built once.
# The workers keep every core busy, so each model runs on one thread (more would only contend).
TEST_WORKERS ?= 3

test: lint
	OMP_NUM_THREADS=1 $(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope

# The inner loop: every module but the tests marked slow, in two processes (the not-slow tests
# mostly compute, so a third process on two cores only adds its start-up). No lint, no install check.
test-fast:
	OMP_NUM_THREADS=1 $(BIN)/pytest -m "not slow" -n 2 --dist loadscope

demo: install
	$(BIN)/python -m codebase_gateway.demo "$(REPO)"

bench: install
	$(BIN)/python bench/run_bench.py

# Re-resolve the lock after changing dependencies in pyproject.toml (tests/unit/test_lock.py fails
# until you do). pip-tools runs from its own throwaway environment, not the project's.
lock:
	$(PYTHON) -m venv .lock-tools
	.lock-tools/bin/pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" .lock-tools/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links $(LOCKED_EXTRAS) -o $(LOCK) pyproject.toml
	rm -rf .lock-tools

clean:
	rm -rf $(VENV) build *.egg-info
