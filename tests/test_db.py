from pathlib import Path

import pytest
from sqlalchemy import text

from paperfeed import db


def test_unmigrated_database_is_refused_with_the_fix(tmp_path: Path) -> None:
    eng = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(db.NotMigratedError, match="paperfeed db upgrade"):
        db.check_migrated(eng)
    db.upgrade(eng)
    db.check_migrated(eng)
    db.upgrade(eng)  # idempotent
    db.check_migrated(eng)


def test_sqlite_on_disk_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    eng = db.make_engine(f"sqlite:///{tmp_path / 'y.db'}")
    with eng.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_transaction_rolls_back_on_error(engine) -> None:
    with pytest.raises(RuntimeError), db.transaction(engine) as conn:
        conn.execute(
            text(
                "INSERT INTO ingest_state (key, value, updated_at) VALUES ('k', '{}', '2020-01-01')"
            )
        )
        raise RuntimeError("boom")
    with db.read(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM ingest_state")).scalar() == 0


def test_expected_heads_agree_with_alembic() -> None:
    """The start-up check reads the migration scripts itself; alembic must see the same heads."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    assert set(db.expected_heads()) == set(script.get_heads())
    assert len(db.expected_heads()) == 1
