# paperfeed: `make demo` serves the front page with the bundled sample; `make test` is what CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DEMO_DB ?= sqlite:///paperfeed-demo.db
export PAPERFEED_DATABASE_URL ?= $(DEMO_DB)

.PHONY: install demo test lint types pytest pytest-pg browser-deps queue-deps screenshots bench clean

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

pytest: install browser-deps queue-deps
	$(BIN)/pytest

# Debian chromium + axe-core for tests/browser; installs only what is missing.
browser-deps:
	scripts/ensure-chromium.sh

# Debian redis-server for tests/test_queue_backends.py (workers on a real Redis); only if missing.
queue-deps:
	scripts/ensure-redis.sh

# Regenerate the screenshots the README shows (docs/screenshots/*.png) from the browser tests.
screenshots: install browser-deps
	$(BIN)/pytest tests/browser/test_screenshots.py --screenshots-dir docs/screenshots


# The same suite against a real PostgreSQL 16 + pgvector (pgserver's binaries, see scripts/pg.sh),
# started in .pg-test/ and stopped afterwards. Browser tests run once, in the SQLite pass.
pytest-pg: install queue-deps
	url=$$(scripts/pg.sh start .pg-test) && \
	  PAPERFEED_TEST_DATABASE_URL=$$url $(BIN)/pytest -m "not browser and not slow"; \
	  rc=$$?; scripts/pg.sh stop .pg-test; exit $$rc

test: lint types pytest pytest-pg

clean:
	-scripts/pg.sh stop .pg-test
	rm -rf $(VENV) paperfeed-demo.db* paperfeed-data .pg-test
