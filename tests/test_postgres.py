"""The PostgreSQL pass really runs on PostgreSQL, with pgvector available (production needs it)."""

import pytest
from sqlalchemy import text

from paperfeed import db

pytestmark = pytest.mark.postgres


def test_suite_runs_on_postgresql_with_pgvector(engine) -> None:
    assert engine.dialect.name == "postgresql"
    with db.transaction(engine) as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        assert conn.execute(text("SELECT '[1,2]'::vector <-> '[1,4]'::vector")).scalar() == 2.0


def test_each_test_gets_a_fresh_database(engine) -> None:
    with db.read(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM papers")).scalar() == 0
        assert db.current_heads(engine)[0] == db.current_heads(engine)[1]
