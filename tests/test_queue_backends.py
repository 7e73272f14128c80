"""The distributed queues for real: several `paperfeed worker` processes on Redis or PostgreSQL.

`paperfeed digest enqueue` plans an edition and queues send jobs; three worker processes take
them from a real Redis server (Debian's redis-server, started here on a free loopback port) or
from huey's SqlHuey on the PostgreSQL test server, and deliver to a loopback aiosmtpd sink.
Every subscriber must get exactly one copy, and more than one worker must have sent some.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, make_url, select, text
from typer.testing import CliRunner

from conftest import ON_POSTGRES, TEST_DATABASE_URL
from digest_support import MONDAY, add_paper, add_subscriber
from paperfeed import db
from paperfeed.cli import app
from paperfeed.jobs import make_huey
from paperfeed.models import DigestSend
from smtp_sink import Sink, SinkHandler, free_port

SUBSCRIBERS = 45
WORKERS = 3
READY = "Huey consumer started"
SENT_LINE = re.compile(r"digest daily:2024-05-06: planned \d+, sent (\d+),")


@pytest.fixture
def shared_db(tmp_path: Path, settings, engine):
    """A database several processes can open: the PostgreSQL clone, or a SQLite file."""
    if ON_POSTGRES:
        yield engine, settings
        return
    url = f"sqlite:///{tmp_path / 'pf.db'}"
    file_engine = db.make_engine(url)
    db.upgrade(file_engine)
    yield file_engine, settings.model_copy(update={"database_url": url})
    file_engine.dispose()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, no persistence, in a temp dir."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(exe):
        pytest.skip(
            "redis-server is not installed (make test installs it: scripts/ensure-redis.sh)"
        )
    import redis

    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    options = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir)]
    options += ["--save", "", "--appendonly", "no"]  # a throwaway: no persistence
    proc = subprocess.Popen(
        [exe, *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"redis-server did not start (exit {proc.poll()})") from None
            time.sleep(0.05)
    client.close()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def pg_queue_url() -> Iterator[str]:
    """A database of its own for huey's tables on the PostgreSQL test server."""
    if not ON_POSTGRES:
        pytest.skip("needs PAPERFEED_TEST_DATABASE_URL (the PostgreSQL pass)")
    name = f"pfq_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    # The SQLAlchemy form (postgresql+psycopg://) on purpose: the same spelling as the database.
    yield make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Process:
    """A `paperfeed ...` subprocess whose output lines are collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from paperfeed.cli import main; main()", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def saw(self, needle: str) -> bool:
        return any(needle in line for line in self.lines)

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # huey: graceful shutdown

    def wait(self) -> None:
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)

    @property
    def output(self) -> str:
        return "".join(self.lines)


def _wait(condition, timeout_s: float, what: str, procs: list[Process]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n---\n".join(p.output[-3000:] for p in procs)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.05)


def _workers_share_one_edition(engine, settings, queue_url: str) -> None:
    with db.transaction(engine) as conn:
        add_paper(conn, "2405.00001", "Only paper", featured=MONDAY, upvotes=5)
        emails = [f"q{i:03d}@example.org" for i in range(SUBSCRIBERS)]
        for address in emails:
            add_subscriber(conn, address)
    handler = SinkHandler()
    workers: list[Process] = []
    with Sink(handler) as sink:
        env = os.environ | {
            "PAPERFEED_DATABASE_URL": settings.database_url,
            "PAPERFEED_DATA_DIR": str(settings.data_dir),
            "PAPERFEED_SECRET_KEY": settings.secret_key,
            "PAPERFEED_QUEUE_URL": queue_url,
            "PAPERFEED_MAIL_BACKEND": "smtp",
            "PAPERFEED_SMTP_HOST": "127.0.0.1",
            "PAPERFEED_SMTP_PORT": str(sink.port),
            "PAPERFEED_MAIL_RETRY_BACKOFF_S": "0.01",
            # 15 messages/s per job in claims of 3: one job alone would need 3 s, so the
            # three jobs, one per worker, overlap and split the edition between them.
            "PAPERFEED_MAIL_RATE_PER_S": "15",
            "PAPERFEED_DIGEST_CLAIM_BATCH": "3",
        }
        try:
            workers = [Process(["worker", "--workers", "1"], env) for _ in range(WORKERS)]
            _wait(lambda: all(w.saw(READY) for w in workers), 60, "workers to start", workers)
            enqueue = CliRunner().invoke(
                app,
                ["digest", "enqueue", "--edition", MONDAY.isoformat(), "--jobs", str(WORKERS)],
                env=env,
            )
            assert enqueue.exit_code == 0, enqueue.output
            assert f"planned {SUBSCRIBERS} new message(s), queued 3 send job(s)" in enqueue.output

            def all_sent() -> bool:
                with db.read(engine) as conn:
                    return conn.execute(
                        select(func.count()).where(DigestSend.status == "sent")
                    ).scalar_one() == SUBSCRIBERS and all(
                        any(SENT_LINE.search(line) for line in w.lines) for w in workers
                    )

            _wait(all_sent, 90, "the edition to be sent", workers)
        finally:
            for w in workers:
                w.interrupt()
            for w in workers:
                w.wait()
    counts = Counter(m.recipient for m in handler.messages)
    assert {e: counts[e] for e in emails} == dict.fromkeys(emails, 1)
    assert len({m.message_id for m in handler.messages}) == SUBSCRIBERS
    per_worker = [sum(int(m[1]) for m in SENT_LINE.finditer(w.output)) for w in workers]
    assert sum(per_worker) == SUBSCRIBERS, per_worker
    assert sum(1 for n in per_worker if n) >= 2, per_worker  # they really shared the edition


def test_workers_on_redis_share_an_edition(shared_db, redis_url):
    engine, settings = shared_db
    _workers_share_one_edition(engine, settings, redis_url)


@pytest.mark.postgres
def test_workers_on_postgresql_queue_share_an_edition(shared_db, pg_queue_url):
    engine, settings = shared_db
    _workers_share_one_edition(engine, settings, pg_queue_url)
    # huey's tables live in the queue's own database, and the jobs are gone from it.
    queue = create_engine(pg_queue_url)
    with queue.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM task")).scalar_one() == 0
    queue.dispose()


@pytest.mark.postgres
def test_workers_starting_together_on_a_fresh_pg_queue(settings, pg_queue_url):
    """Stock SqlHuey races in CREATE TABLE IF NOT EXISTS (pg_type unique violation); we lock."""
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            make_huey(settings.model_copy(update={"queue_url": pg_queue_url})).storage.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
