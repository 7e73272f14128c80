"""Engine for sqlite:// or postgresql://, transactions, and the migration check."""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class NotMigratedError(RuntimeError):
    """The database schema is older than this code (or empty)."""


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str, session: dict[str, str] | None = None) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.
    `session`: PostgreSQL settings for every connection, set once when it opens (a statement
    per request saved) and listed in its `info["session"]` for code that checks them."""
    # JSON columns (authors, versions, ...) through orjson: several times faster than the json
    # module on every catalog write and read.
    kwargs: dict[str, Any] = {
        "future": True,
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if memory:
            kwargs["poolclass"] = StaticPool  # one shared in-memory database
        else:
            # Never block on the pool: a request holds its connection from its dependency
            # to the end of its handler, so with a bounded pool and more concurrent requests
            # than worker threads, holders wait for threads while every thread waits for a
            # connection (a deadlock until the pool timeout; tests/test_votes_concurrency.py).
            # SQLite connections are cheap; 10 stay open for reuse.
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = -1
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy/our code control transactions (BEGIN IMMEDIATE for writes).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # Writers take the lock up front (IMMEDIATE) so concurrent writers queue on
            # busy_timeout instead of failing on a lock upgrade; readers stay deferred (WAL).
            write = conn.get_execution_options().get("write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    kwargs["pool_pre_ping"] = True
    kwargs["pool_size"] = 10
    kwargs["max_overflow"] = 20
    engine = create_engine(url, **kwargs)
    if session:

        @event.listens_for(engine, "connect")
        def _session(dbapi_conn: Any, record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                for name, value in session.items():
                    cur.execute("SELECT set_config(%s, %s, false)", (name, value))
            dbapi_conn.commit()
            record.info["session"] = dict(session)

    return engine


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # alembic (with mako, pygments) costs ~0.3 s to import

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply all migrations (idempotent)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


@functools.cache
def expected_heads() -> frozenset[str]:
    """The head revisions of the migration scripts, read from their `revision` and
    `down_revision` assignments: every CLI command and web process checks the schema at
    start, and asking alembic's ScriptDirectory would import alembic (~0.3 s) to do it."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                if "revision" in names:
                    revisions.add(ast.literal_eval(node.value))
                elif "down_revision" in names:
                    value = ast.literal_eval(node.value)
                    parents.update(
                        [] if value is None else [value] if isinstance(value, str) else value
                    )
    return frozenset(revisions - parents)


def current_heads(engine: Engine) -> tuple[set[str], set[str]]:
    """(revisions applied to the database, revisions this code expects)."""
    return applied_heads(engine), set(expected_heads())


def check_migrated(engine: Engine) -> None:
    """Refuse to run on an unmigrated or outdated database, with the command that fixes it."""
    applied, expected = current_heads(engine)
    if applied != expected:
        state = "empty" if not applied else f"at {sorted(applied)}"
        raise NotMigratedError(
            f"The database {engine.url.render_as_string(hide_password=True)} is {state}, "
            f"but this paperfeed needs {sorted(expected)}. Run `paperfeed db upgrade` first."
        )


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[Connection]:
    """One unit of work: commit on success, roll back on any exception."""
    with engine.connect() as conn:
        conn.execution_options(write=write)
        with conn.begin():
            yield conn


def read(engine: Engine) -> Any:
    """A read-only unit of work (a deferred transaction: never blocks on SQLite writers)."""
    return transaction(engine, write=False)


def applied_heads(engine: Engine) -> set[str]:
    """The migration revisions recorded in the database (raises if it is unreachable)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def serialize(conn: Connection, name: str) -> None:
    """Serialize this write transaction with every other one that names the same lock.

    SQLite writers already run one at a time (BEGIN IMMEDIATE). PostgreSQL runs them
    concurrently, so a read-then-write such as "insert the papers that don't exist yet" could
    race another process and fail on a unique constraint; a transaction-scoped advisory lock
    restores SQLite's behaviour for that section (released at commit or rollback).
    """
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
        )
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (key,))
