# Two entry points: `make run` (the hub with a seeded demo site) and `make test` (the whole suite).
# Both install from requirements.lock: every package pinned and hash-checked, so pip resolves
# nothing of its own. `make lock` refreshes the lock after a change to pyproject.toml.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# `make lock` runs uv from a venv of its own under var/, so the project's venv holds the lock only.
UV_VERSION := 0.13.8
LOCK_TOOLS := var/lock-tools

.PHONY: run test fuzz lint venv lock clean

# --require-hashes: pip refuses any file, of any package, whose hash is not in the lock.
# The project itself goes in without dependencies (they are all in the lock) and without build
# isolation (its build backend, setuptools, is in the lock too); -qq hides setuptools' banner
# about editable installs, errors still show.
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -qq --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m app.launcher run

# The suite runs in pytest-xdist workers, one per core (at most four), each with a database and a Redis of
# its own (tests/conftest.py); a file's tests stay on one worker, so a file's servers start once. Then the
# tests marked `serial` (latencies and rates of real processes) run on their own in one process.
# TEST_PROCESSES=0 runs the first part in one process too. MARKS narrows both parts (`MARKS="not browser"`);
# PYTEST_ARGS goes to both (a part that finds no test of a selection is not a failure, both finding none is).
TEST_PROCESSES ?= auto
MARKS ?=
AND_MARKS := $(if $(MARKS), and ($(MARKS)))
test: $(STAMP)
	@parallel=0; serial=0; \
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --maxprocesses 4 --dist loadfile -m "not serial$(AND_MARKS)" $(PYTEST_ARGS) || parallel=$$?; \
	$(BIN)/python -m pytest -m "serial$(AND_MARKS)" $(PYTEST_ARGS) || serial=$$?; \
	echo "make test: parallel part exit $$parallel, serial part exit $$serial"; \
	if [ $$parallel -eq 5 ] && [ $$serial -eq 5 ]; then exit 5; fi; \
	for status in $$parallel $$serial; do if [ $$status -ne 0 ] && [ $$status -ne 5 ]; then exit $$status; fi; done

# schemathesis over the whole API with every role's token (minutes; .ci/run runs it once).
fuzz: $(STAMP)
	OPSHUB_FUZZ=1 $(BIN)/python -m pytest tests/test_api_fuzz.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Resolve pyproject.toml's dependencies (with the dev extra), its build requirements and pip into
# requirements.lock, with the hashes of every file PyPI has for each pinned version. Versions
# already in the lock are kept where pyproject.toml still allows them; `make lock UPGRADE=1`
# moves every package to the newest version allowed.
lock:
	@test -x $(LOCK_TOOLS)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOLS) && \
		$(LOCK_TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	$(PYTHON) -c 'import tomllib; print("\n".join([*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], "pip"]))' \
		| $(LOCK_TOOLS)/bin/uv pip compile pyproject.toml - --extra dev --generate-hashes --python-version 3.11 \
		--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) --quiet -o $(LOCK)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
