"""Shared fixtures: a fresh migrated in-memory SQLite per test, settings, the app client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from paperfeed import db
from paperfeed.config import Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url="sqlite://",
        data_dir=tmp_path / "data",
        secret_key="test-secret",
        arxiv_delay_s=0.0,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = db.make_engine(settings.database_url)
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
