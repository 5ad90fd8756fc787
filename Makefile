# Two entry points: `make run` (the hub with a seeded demo site) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test fuzz lint venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m app.launcher run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# schemathesis over the whole API with every role's token (minutes; .ci/run runs it once).
fuzz: $(STAMP)
	OPSHUB_FUZZ=1 $(BIN)/python -m pytest tests/test_api_fuzz.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
