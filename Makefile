# funcnn: `make demo` runs the main job, `make test` the whole suite.
# Both create the virtual environment in .venv when it is missing (with the dev extra,
# which brings pytest, ruff, mypy and import-linter, and the optional grain extra, which the
# streaming tests use).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.funcnn-installed
EXTRAS := dev,data,plot,grain

.PHONY: demo test lint typecheck imports pytest venv bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/funcnn demo

lint: $(STAMP)
	$(BIN)/ruff check funcnn tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy funcnn

# The import contracts in pyproject.toml ([tool.importlinter]; docs/design.md, "Architecture").
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q --durations=15

test: lint typecheck imports pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/train_mlp.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache funcnn.egg-info
