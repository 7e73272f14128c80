"""Shared fixtures: a fresh migrated database per test, settings, the app client.

The database is an in-memory SQLite unless PAPERFEED_TEST_DATABASE_URL names a PostgreSQL
server (`make test` sets it for its second pass, see scripts/pg.sh): then every test gets its
own database, cloned from a template migrated once per session (CREATE DATABASE ... TEMPLATE
STRATEGY FILE_COPY takes ~0.07 s here; running the migrations per test takes ~1 s).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from paperfeed import db
from paperfeed.config import Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


# Tests read the environment only for this switch; the product reads it only in config.py.
TEST_DATABASE_URL = os.environ.get("PAPERFEED_TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` need the PostgreSQL pass; they skip on the SQLite pass."""
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PAPERFEED_TEST_DATABASE_URL (the PostgreSQL pass)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a migrated template database on the test server (one per test session)."""
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # Drop leftovers of killed sessions (their pid is in the name); never a live one's.
        for (name,) in conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE 'pft_%'")
        ):
            pid = name.split("_")[1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        tpl = f"pft_{os.getpid()}_tpl"
        conn.execute(text(f'DROP DATABASE IF EXISTS "{tpl}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{tpl}"'))
    tpl_url = make_url(TEST_DATABASE_URL).set(database=tpl).render_as_string(hide_password=False)
    eng = db.make_engine(tpl_url)
    db.upgrade(eng)
    eng.dispose()
    yield tpl
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{tpl}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database for this test: in-memory SQLite, or a PostgreSQL clone."""
    if not ON_POSTGRES:
        yield "sqlite://"
        return
    tpl = request.getfixturevalue("pg_template")
    name = f"pft_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}" STRATEGY FILE_COPY'))
    yield make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret",
        arxiv_delay_s=0.0,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = db.make_engine(settings.database_url)
    if not ON_POSTGRES:  # PostgreSQL clones come migrated from the template
        db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def app(settings: Settings, engine: Engine):
    from paperfeed.app import create_app

    return create_app(settings, engine)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://testserver") as c:
        yield c
