PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
export OPENBLAS_NUM_THREADS := 1

.PHONY: demo test lint install clean

$(BIN)/recsys: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/recsys

install: $(BIN)/recsys

demo: install
	$(BIN)/recsys demo --dir $(DEMO_DIR)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
