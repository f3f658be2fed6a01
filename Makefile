# Landing Lab: `make run` starts all four services on SQLite; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test install lint bench screenshots clean

$(STAMP): pyproject.toml
	@echo "Setting up Landing Lab in $(VENV) (the first time takes a minute or two) ..."
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@echo "  upgrading pip"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "  installing Landing Lab and its dependencies"
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)
	@echo "  done"

install: $(STAMP)

# Starts the four services, prints their URLs once each answers its health check; Ctrl-C stops them.
run: $(STAMP)
	@$(BIN)/python scripts/run.py

# Two weeks of sample traffic into the stack `make run` started (run it in another terminal).
demo: $(STAMP)
	@$(BIN)/python scripts/demo.py

# TEST_WORKERS parallel pytest processes (pytest-xdist); TEST_WORKERS=0 runs the tests in this process.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache
