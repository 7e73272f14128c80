"""Background jobs on huey: the digest schedule (a periodic tick) and the send jobs it enqueues.

Embedded by default (SqliteHuey: a file under data_dir, no server), Redis or PostgreSQL when
`PAPERFEED_QUEUE_URL` names one, so workers on several machines share the queue. Every job is
also a CLI command (`paperfeed digest send`); the queue only decides when it runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.api import TaskWrapper
from sqlalchemy import Engine

from paperfeed import db
from paperfeed.config import Settings
from paperfeed.digest import Edition, has_edition
from paperfeed.digest_send import pending_editions, plan, plan_due, send_edition

log = logging.getLogger(__name__)

TICK_MINUTES = "*/10"  # schedule granularity: delivery hours are whole hours, 10 min is plenty


# A worker polls an SQL queue (SQLite, PostgreSQL) at most this long apart when idle (seconds):
# one indexed SELECT per worker thread per second is nothing, and a send job starts within a
# second of being queued (huey's default backs off to 10 s). Redis blocks on BRPOP instead.
POLL_MAX_S = 1.0
# pg_advisory_xact_lock key held while huey's tables are created: workers starting together on
# a fresh queue database would otherwise race in CREATE TABLE IF NOT EXISTS (a unique violation
# in pg_type). Any constant works; this one is "pfqueue" in ASCII.
PG_SCHEMA_LOCK = 0x706671756575
PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def make_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    """The queue named by `queue_url` ("" = SQLite file `data_dir/queue.db`).

    Task results are not stored: nothing reads them (reports go to the log and the database),
    and on Redis or PostgreSQL they would pile up forever."""
    url = settings.queue_url
    if immediate:  # run tasks synchronously, in memory (tests, one-off runs)
        return Huey("paperfeed", immediate=True)
    if not url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("paperfeed", filename=str(settings.data_dir / "queue.db"), results=False)
    if url.startswith(("redis://", "rediss://", "unix://")):
        # needs `pip install 'paperfeed[redis]'`
        return RedisHuey("paperfeed", url=url, results=False)
    if url.startswith(PG_SCHEMES):
        return _pg_huey(url)
    raise ValueError(
        f"PAPERFEED_QUEUE_URL must be empty, redis://... or postgresql://..., not {url!r}"
    )


def _pg_huey(url: str) -> Huey:
    """huey's SqlHuey on PostgreSQL through peewee and psycopg 3 (`paperfeed[pgqueue]`).

    Its four tables (task, schedule, kv, counter) are created on first use; give the queue a
    database of its own (README "Queue") so they never meet the application's."""
    from huey.contrib.sql_huey import SqlHuey
    from playhouse.db_url import connect

    # SQLAlchemy-style "postgresql+psycopg://" (like PAPERFEED_DATABASE_URL) is accepted too.
    database = connect("postgresql://" + url.split("://", 1)[1], prefer_psycopg3=True)
    huey = SqlHuey("paperfeed", database=database, create_tables=False, results=False)
    storage = huey.storage
    with database.connection_context(), database.atomic():
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (PG_SCHEMA_LOCK,))
        database.create_tables([storage.KV, storage.Schedule, storage.Task, storage.Counter])
    return huey


@dataclass
class DigestJobs:
    """The registered tasks: `tick` (periodic) plans what is due; `send` delivers one edition."""

    huey: Huey
    tick: TaskWrapper
    send: TaskWrapper


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def register(
    huey: Huey,
    settings: Settings,
    engine: Engine,
    senders: int = 1,
    clock: Callable[[], dt.datetime] = _utcnow,
) -> DigestJobs:
    """Register the digest tasks on `huey`; each pending edition gets `senders` send jobs."""

    @huey.task(name="digest.send")
    def send(edition_key: str) -> dict[str, object]:
        report = send_edition(engine, settings, Edition.parse(edition_key), plan_rows=False)
        log.info("digest %s: %s", edition_key, report.summary())
        return {"edition": edition_key, "sent": report.sent, "ok": report.ok}

    @huey.periodic_task(crontab(minute=TICK_MINUTES), name="digest.tick")
    def tick() -> list[str]:
        with db.transaction(engine) as conn:
            plan_due(conn, clock())
        with db.read(engine) as conn:
            editions = pending_editions(conn)
        # Several send jobs per edition share it through row claims: no message goes twice.
        for edition in editions:
            for _ in range(senders):
                send(edition.key)
        return [e.key for e in editions]

    return DigestJobs(huey, tick, send)


def enqueue_edition(
    settings: Settings, engine: Engine, edition: Edition, jobs: int = 2
) -> int | None:
    """Plan an edition's rows and queue `jobs` send jobs for the workers; None: no edition."""
    with db.transaction(engine) as conn:
        if not has_edition(conn, edition):
            return None
        planned = plan(conn, edition)
    huey = make_huey(settings)
    digest = register(huey, settings, engine)
    try:
        for _ in range(jobs):
            digest.send(edition.key)
    finally:
        huey.storage.close()
    return planned


def run_worker(settings: Settings, engine: Engine, workers: int = 2) -> None:
    """Run the consumer (schedule + send jobs) in this process until SIGINT/SIGTERM."""
    huey = make_huey(settings)
    register(huey, settings, engine, senders=workers)
    consumer = huey.create_consumer(
        workers=workers, worker_type="thread", periodic=True, max_delay=POLL_MAX_S
    )
    consumer.run()
