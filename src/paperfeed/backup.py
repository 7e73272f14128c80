"""Online backup and restore of the SQLite database (PostgreSQL: pg_dump/pg_restore, see README)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import Engine

PAGES_PER_STEP = 4096  # pages (16 MB at 4 KiB) copied per step; writers get the lock between steps


class BackupError(RuntimeError):
    """Backup or restore cannot proceed; the message says why and what to do instead."""


def sqlite_file(engine: Engine) -> Path:
    """The database file behind a sqlite:/// engine (refuses PostgreSQL and in-memory ones)."""
    if engine.dialect.name != "sqlite":
        raise BackupError(
            "this is a PostgreSQL database: back it up with pg_dump -Fc and restore with "
            "pg_restore (README, Production > Backup and restore)"
        )
    name = engine.url.database
    if not name or name == ":memory:" or "mode=memory" in str(engine.url):
        raise BackupError("an in-memory database cannot be backed up")
    return Path(name)


def _check(path: Path) -> None:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        ok = conn.execute("PRAGMA integrity_check").fetchone()
        if not ok or ok[0] != "ok":
            raise BackupError(f"{path} fails PRAGMA integrity_check: {ok}")
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).fetchone():
            raise BackupError(f"{path} is not a paperfeed database (no alembic_version table)")


def backup(engine: Engine, dest: Path) -> int:
    """Consistent copy of the live database into dest (atomic rename); returns its size in bytes.

    Uses SQLite's online backup API, so the web and worker processes keep running. The copy is
    a single self-contained file (no -wal), integrity-checked before it replaces dest.
    """
    src_path = sqlite_file(engine)
    if dest.resolve() == src_path.resolve():
        raise BackupError("the backup file must not be the database itself")
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(src_path) as src, sqlite3.connect(tmp) as dst:
        src.backup(dst, pages=PAGES_PER_STEP)
        dst.execute("PRAGMA journal_mode=DELETE")  # one file, readable anywhere
    src.close()
    dst.close()
    _check(tmp)
    os.replace(tmp, dest)
    return dest.stat().st_size


def restore(engine: Engine, source: Path) -> None:
    """Replace the database's contents with a backup file (checked first), through SQLite's API.

    Stop the web and worker processes first: connections open during the restore keep working
    but may have read data from before it.
    """
    dest_path = sqlite_file(engine)
    if not source.is_file():
        raise BackupError(f"{source} does not exist")
    _check(source)
    with sqlite3.connect(source) as src, sqlite3.connect(dest_path, timeout=30) as dst:
        src.backup(dst, pages=PAGES_PER_STEP)
    src.close()
    dst.close()
