# Landing Lab: `make run` starts all four services on SQLite; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install lint bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@mkdir -p data
	@test -s data/admin_token || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(24))" > data/admin_token
	@test -s data/ingest_key || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(24))" > data/ingest_key
	@test -s data/secret_key || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(32))" > data/secret_key
	@echo "landing         http://127.0.0.1:8080"
	@echo "dashboard       http://127.0.0.1:8081"
	@echo "metrics_service http://127.0.0.1:5001"
	@echo "ab_service      http://127.0.0.1:5002"
	@echo "admin token     $$(cat data/admin_token)   (in data/admin_token)"
	@echo "ingest key      in data/ingest_key (the landing service sends it with events and assignments)"
	ADMIN_TOKEN=$$(cat data/admin_token) INGEST_KEY=$$(cat data/ingest_key) SECRET_KEY=$$(cat data/secret_key) \
		PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho start -f Procfile

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache
