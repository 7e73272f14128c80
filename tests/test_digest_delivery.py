"""Delivery faults against a real SMTP server: refusals, drops, kills, several senders at once.

After every fault and a rerun, each subscriber must hold exactly one copy of the edition.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from digest_support import MONDAY, add_paper, add_subscriber, smtp_settings, subscriber
from paperfeed import db
from paperfeed.digest import Edition
from paperfeed.digest_send import send_edition
from paperfeed.models import DigestSend
from smtp_sink import Sink, SinkHandler, free_port

EDITION = Edition("daily", MONDAY)


def _setup(engine, n: int) -> list[str]:
    with db.transaction(engine) as conn:
        add_paper(conn, "2405.00001", "Only paper", featured=MONDAY, upvotes=5)
        emails = [f"r{i:03d}@example.org" for i in range(n)]
        for e in emails:
            add_subscriber(conn, e)
    return emails


def _assert_exactly_once(handler: SinkHandler, emails: list[str]) -> None:
    counts = Counter(m.recipient for m in handler.messages)
    assert {e: counts[e] for e in emails} == dict.fromkeys(emails, 1)
    ids = Counter(m.message_id for m in handler.messages)
    assert len(ids) == len(emails) and max(ids.values()) == 1


def test_permanent_refusal_counts_bounces_then_marks_bouncing(engine, settings):
    emails = _setup(engine, 4)
    handler = SinkHandler(refuse_rcpt={"r001@example.org": "550 5.1.1 No such user"})
    with Sink(handler) as sink:
        s = smtp_settings(settings, sink.port, digest_bounce_threshold=2)
        report = send_edition(engine, s, EDITION)
        assert (report.sent, report.bounced, report.ok) == (3, 1, True)
        with db.read(engine) as conn:
            bad = subscriber(conn, "r001@example.org")
            assert (bad.status, bad.bounce_count) == ("active", 1)
            row = conn.execute(select(DigestSend).where(DigestSend.subscriber_id == bad.id)).one()
            assert row.status == "bounced" and "550" in row.error
        with db.transaction(engine) as conn:
            for day in (7, 8):
                add_paper(conn, f"2405.0000{day}", "Later", featured=MONDAY.replace(day=day))
        send_edition(engine, s, Edition("daily", MONDAY.replace(day=7)))  # a second refusal
        with db.read(engine) as conn:
            assert subscriber(conn, "r001@example.org").status == "bouncing"
        # A bouncing address is no longer planned.
        report = send_edition(engine, s, Edition("daily", MONDAY.replace(day=8)))
        assert report.planned == 3
    counts = Counter(m.recipient for m in handler.messages)
    assert "r001@example.org" not in counts
    assert all(counts[e] == 3 for e in emails if e != "r001@example.org")


def test_transient_refusals_are_retried_and_rerun_completes(engine, settings):
    emails = _setup(engine, 6)
    handler = SinkHandler(
        data_replies={0: "451 4.3.0 try again later"},  # first message: retried at once
        refuse_rcpt={"r003@example.org": "450 4.2.1 mailbox busy"},  # persists this run
    )
    with Sink(handler) as sink:
        s = smtp_settings(settings, sink.port, mail_retries=1)
        report = send_edition(engine, s, EDITION)
        assert (report.sent, report.deferred, report.ok) == (5, 1, False)
        with db.read(engine) as conn:
            row = conn.execute(select(DigestSend).where(DigestSend.status == "pending")).one()
            assert row.attempts == 1 and "450" in row.error and row.claimed_by is None
        handler.refuse_rcpt.clear()
        report = send_edition(engine, s, EDITION)
        assert (report.sent, report.ok) == (1, True)
    _assert_exactly_once(handler, emails)


def test_connection_dropped_mid_run(engine, settings):
    emails = _setup(engine, 10)
    handler = SinkHandler(drop_at={2, 6, 7})
    with Sink(handler) as sink:
        report = send_edition(engine, smtp_settings(settings, sink.port), EDITION)
        assert (report.sent, report.ok) == (10, True)
    _assert_exactly_once(handler, emails)


def test_server_down_aborts_then_rerun_delivers(engine, settings):
    emails = _setup(engine, 5)
    port = free_port()  # nothing listens here yet
    s = smtp_settings(settings, port, mail_retries=0, smtp_timeout_s=2)
    report = send_edition(engine, s, EDITION)
    assert report.sent == 0 and "transient failures in a row" in report.aborted
    with db.read(engine) as conn:
        statuses = conn.execute(select(DigestSend.status, DigestSend.claimed_by)).all()
    assert statuses == [("pending", None)] * 5
    handler = SinkHandler()
    sink = Sink(handler)
    sink.port = port
    sink.controller.port = port
    with sink:
        report = send_edition(engine, s, EDITION)
        assert (report.sent, report.ok) == (5, True)
    _assert_exactly_once(handler, emails)


# --- separate processes ---------------------------------------------------------------------


@pytest.fixture
def file_db(tmp_path: Path, settings):
    url = f"sqlite:///{tmp_path / 'pf.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    yield engine, settings.model_copy(update={"database_url": url})
    engine.dispose()


def _sender(settings, port: int, **env: str) -> subprocess.Popen:
    environment = os.environ | {
        "PAPERFEED_DATABASE_URL": settings.database_url,
        "PAPERFEED_DATA_DIR": str(settings.data_dir),
        "PAPERFEED_SECRET_KEY": settings.secret_key,
        "PAPERFEED_MAIL_BACKEND": "smtp",
        "PAPERFEED_SMTP_HOST": "127.0.0.1",
        "PAPERFEED_SMTP_PORT": str(port),
        "PAPERFEED_MAIL_RETRY_BACKOFF_S": "0.01",
        **env,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from paperfeed.cli import main; main()",
            "digest",
            "send",
            "--edition",
            MONDAY.isoformat(),
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _sent_rows(engine) -> int:
    with db.read(engine) as conn:
        return len(conn.execute(select(DigestSend).where(DigestSend.status == "sent")).all())


def test_killed_sender_then_rerun_sends_each_remaining_once(file_db):
    engine, settings = file_db
    emails = _setup(engine, 40)
    handler = SinkHandler()
    with Sink(handler) as sink:
        # 10 messages/s: the sender spends most of its time between messages. We SIGKILL it
        # there — after the sink has accepted 12+ messages and every accepted one is recorded
        # as sent — i.e. mid-edition but outside the RFC 1047 window (see digest_send).
        proc = _sender(settings, sink.port, PAPERFEED_MAIL_RATE_PER_S="10")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            accepted = len(handler.messages)
            if accepted >= 12 and _sent_rows(engine) == accepted:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = len(handler.messages)
        assert 12 <= first < 40
        with db.read(engine) as conn:  # the dead process still holds its claim
            assert (
                conn.execute(select(DigestSend).where(DigestSend.claimed_by.is_not(None))).first()
                is not None
            )
        rerun = _sender(settings, sink.port)
        out, _ = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, out
        assert f"sent {40 - first}," in out
    _assert_exactly_once(handler, emails)


def test_several_senders_share_one_edition(file_db):
    engine, settings = file_db
    emails = _setup(engine, 60)
    handler = SinkHandler()
    with Sink(handler) as sink:
        # 15/s each: alone, one sender would need 4 s, far longer than the others take to start.
        env = {"PAPERFEED_MAIL_RATE_PER_S": "15", "PAPERFEED_DIGEST_CLAIM_BATCH": "4"}
        procs = [_sender(settings, sink.port, **env) for _ in range(3)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    sent = [int(o.split("sent ")[1].split(",")[0]) for o in outs]
    assert sum(sent) == 60 and sum(1 for n in sent if n) >= 2, outs
    _assert_exactly_once(handler, emails)
