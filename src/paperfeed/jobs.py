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
from paperfeed.digest import Edition
from paperfeed.digest_send import pending_editions, plan_due, send_edition

log = logging.getLogger(__name__)

TICK_MINUTES = "*/10"  # schedule granularity: delivery hours are whole hours, 10 min is plenty


def make_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    """The queue named by `queue_url` ("" = SQLite file `data_dir/queue.db`)."""
    url = settings.queue_url
    if immediate:  # run tasks synchronously, in memory (tests, one-off runs)
        return Huey("paperfeed", immediate=True)
    if not url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("paperfeed", filename=str(settings.data_dir / "queue.db"))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("paperfeed", url=url)  # needs `pip install 'paperfeed[redis]'`
    if url.startswith("postgresql://"):
        from huey.contrib.sql_huey import SqlHuey  # needs `pip install 'paperfeed[pgqueue]'`

        return SqlHuey("paperfeed", database=url)
    raise ValueError(
        f"PAPERFEED_QUEUE_URL must be empty, redis://... or postgresql://..., not {url!r}"
    )


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
        log.info("digest %s: %s", edition_key, report)
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


def run_worker(settings: Settings, engine: Engine, workers: int = 2) -> None:
    """Run the consumer (schedule + send jobs) in this process until SIGINT/SIGTERM."""
    huey = make_huey(settings)
    register(huey, settings, engine, senders=workers)
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=True)
    consumer.run()
