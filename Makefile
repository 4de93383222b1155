# funcnn: `make demo` runs the main job, `make test` the whole suite.
# Both create the virtual environment in .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.funcnn-installed
EXTRAS := dev,data,plot

.PHONY: demo test lint typecheck pytest venv bench clean

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

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/train_mlp.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache funcnn.egg-info
