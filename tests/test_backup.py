"""`paperfeed db backup/restore`: an online, consistent, checked copy of the SQLite database."""

import sqlite3
import threading

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from paperfeed import backup, db, papers
from paperfeed.cli import app as cli
from paperfeed.sources import PaperRecord


def add(engine, n, start=0):
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn,
            [
                PaperRecord(arxiv_id=f"2401.{i:05d}", title=f"P{i}", source="t")
                for i in range(start, start + n)
            ],
        )


def count(engine):
    with db.read(engine) as conn:
        return conn.execute(text("SELECT count(*) FROM papers")).scalar()


@pytest.fixture
def live(tmp_path):
    eng = db.make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    db.upgrade(eng)
    add(eng, 200)
    yield eng
    eng.dispose()


def test_backup_while_writing_then_restore(live, tmp_path):
    dest = tmp_path / "copy.db"
    stop = threading.Event()

    def writer():
        i = 1000
        while not stop.is_set():
            add(live, 5, i)
            i += 5

    t = threading.Thread(target=writer)
    t.start()
    try:
        size = backup.backup(live, dest)
    finally:
        stop.set()
        t.join()
    assert size > 0 and not (tmp_path / "copy.db.partial").exists()
    with sqlite3.connect(dest) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        snapshot = conn.execute("SELECT count(*) FROM papers").fetchone()[0]
        assert snapshot >= 200 and snapshot % 5 == 0  # whole transactions only
    add(live, 10, 900)
    backup.restore(live, dest)
    assert count(live) == snapshot
    db.check_migrated(live)


def test_refusals(live, tmp_path, engine):
    with pytest.raises(backup.BackupError, match="must not be the database itself"):
        backup.backup(live, tmp_path / "live.db")
    junk = tmp_path / "junk.db"
    sqlite3.connect(junk).execute("CREATE TABLE x (y)").connection.commit()
    with pytest.raises(backup.BackupError, match="not a paperfeed database"):
        backup.restore(live, junk)
    assert count(live) == 200  # nothing touched
    if engine.dialect.name == "postgresql":
        with pytest.raises(backup.BackupError, match="pg_dump"):
            backup.backup(engine, tmp_path / "x.db")
    else:
        with pytest.raises(backup.BackupError, match="in-memory"):
            backup.backup(engine, tmp_path / "x.db")


def test_cli(live, tmp_path):
    env = {"PAPERFEED_DATABASE_URL": str(live.url)}
    dest = tmp_path / "cli.db"
    r = CliRunner().invoke(cli, ["db", "backup", str(dest)], env=env)
    assert r.exit_code == 0 and "integrity checked" in r.output
    add(live, 3, 5000)
    r = CliRunner().invoke(cli, ["db", "restore", "--yes", str(dest)], env=env)
    assert r.exit_code == 0, r.output
    assert count(live) == 200
    r = CliRunner().invoke(cli, ["db", "restore", "--yes", str(tmp_path / "missing.db")], env=env)
    assert r.exit_code == 1 and "does not exist" in r.output
