# paperfeed: `make demo` serves the front page with the bundled sample; `make test` is what CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DEMO_DB ?= sqlite:///paperfeed-demo.db
export PAPERFEED_DATABASE_URL ?= $(DEMO_DB)

.PHONY: install demo test lint types pytest browser-deps screenshots bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install
	$(BIN)/paperfeed db upgrade
	$(BIN)/paperfeed ingest jsonl --demo
	$(BIN)/paperfeed index
	$(BIN)/paperfeed serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: install
	$(BIN)/mypy

pytest: install browser-deps
	$(BIN)/pytest

# Debian chromium + axe-core for tests/browser; installs only what is missing.
browser-deps:
	scripts/ensure-chromium.sh

# Regenerate the screenshots the README shows (docs/screenshots/*.png) from the browser tests.
screenshots: install browser-deps
	$(BIN)/pytest tests/browser/test_screenshots.py --screenshots-dir docs/screenshots

test: lint types pytest

clean:
	rm -rf $(VENV) paperfeed-demo.db* paperfeed-data
