"""The mail layer (outbox, SMTP, retries, rate limit), its CLI, and the huey schedule."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digest_support import MONDAY, SUNDAY, add_paper, add_subscriber, smtp_settings
from paperfeed import db, mail
from paperfeed.cli import app
from paperfeed.digest import Edition
from paperfeed.digest_send import due_edition
from paperfeed.jobs import make_huey, register
from paperfeed.models import DigestSend
from smtp_sink import Sink, SinkHandler


def test_outbox_backend_and_cli(settings, monkeypatch):
    for n in range(2):
        msg = mail.build_message(
            settings,
            to=f"a{n}@example.org",
            subject=f"Hello {n}",
            text=f"body {n}\n",
            html=f"<p>body {n}</p>",
        )
        mail.send_mail(settings, msg)
    entries = mail.list_outbox(settings)
    assert [(e.number, e.to, e.subject) for e in entries] == [
        (1, "a0@example.org", "Hello 0"),
        (2, "a1@example.org", "Hello 1"),
    ]
    monkeypatch.setenv("PAPERFEED_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    listing = runner.invoke(app, ["mail", "outbox"])
    assert (
        listing.exit_code == 0 and "Hello 1" in listing.output and "2 message(s)" in listing.output
    )
    shown = runner.invoke(app, ["mail", "show", "2"])
    assert (
        shown.exit_code == 0 and "body 1" in shown.output and "To: a1@example.org" in shown.output
    )
    assert runner.invoke(app, ["mail", "show", "3"]).exit_code == 1


def test_smtp_errors_are_classified_and_rate_limited(settings):
    handler = SinkHandler(
        refuse_rcpt={"gone@example.org": "550 5.1.1 unknown user"},
        data_replies={1: "452 4.3.1 insufficient storage"},
    )
    with Sink(handler) as sink:
        s = smtp_settings(settings, sink.port, mail_retries=0, mail_rate_per_s=20)
        with mail.Mailer(s) as mailer:
            start = time.monotonic()
            mailer.send(mail.build_message(s, to="ok@example.org", subject="1", text="x"))
            with pytest.raises(mail.TransientMailError, match="452"):
                mailer.send(mail.build_message(s, to="ok@example.org", subject="2", text="x"))
            with pytest.raises(mail.PermanentMailError) as exc:
                mailer.send(mail.build_message(s, to="gone@example.org", subject="3", text="x"))
            assert exc.value.code == 550
            for n in range(3):
                mailer.send(mail.build_message(s, to="ok@example.org", subject=f"{n}", text="x"))
            # 6 attempts at 20/s: at least 5 intervals of 50 ms.
            assert time.monotonic() - start >= 0.25
    assert len(handler.messages) == 4
    with pytest.raises(mail.TransientMailError):  # nothing listening: a transient failure
        mail.send_mail(
            smtp_settings(settings, sink.port, mail_retries=1),
            mail.build_message(s, to="ok@example.org", subject="x", text="x"),
        )


def test_due_edition_follows_local_time():
    paris_7am = dt.datetime(2024, 5, 7, 5, 0, tzinfo=dt.UTC)  # 07:00 in Paris (UTC+2)
    assert due_edition("daily", "Europe/Paris", 8, paris_7am) is None
    assert due_edition("daily", "Europe/Paris", 7, paris_7am) == Edition("daily", MONDAY)
    tokyo = dt.datetime(2024, 5, 12, 23, 30, tzinfo=dt.UTC)  # Monday 08:30 in Tokyo
    assert due_edition("weekly", "Asia/Tokyo", 8, tokyo) == Edition("weekly", SUNDAY)
    assert due_edition("weekly", "Asia/Tokyo", 9, tokyo) is None
    assert due_edition("weekly", "UTC", 9, tokyo) == Edition(
        "weekly", MONDAY - dt.timedelta(days=1)
    )


def test_huey_tick_plans_due_subscribers_and_sends(engine, settings):
    with db.transaction(engine) as conn:
        add_paper(conn, "2405.00001", "Monday paper", featured=MONDAY, upvotes=1)
        add_subscriber(conn, "early@example.org", delivery_hour=0)
        add_subscriber(conn, "late@example.org", delivery_hour=23)
    handler = SinkHandler()
    with Sink(handler) as sink:
        s = smtp_settings(settings, sink.port)
        huey = make_huey(s, immediate=True)
        jobs = register(
            huey, s, engine, senders=2, clock=lambda: dt.datetime(2024, 5, 7, 9, tzinfo=dt.UTC)
        )
        jobs.tick()  # plans the early riser (08:00 >= 00:00), not the 23:00 one; sends
        jobs.tick()  # nothing pending the second time: no second copy
    assert [m.recipient for m in handler.messages] == ["early@example.org"]
    with db.read(engine) as conn:
        rows = conn.execute(select(DigestSend.status)).scalars().all()
    assert rows == ["sent"]


def test_sqlite_huey_is_the_default(settings):
    huey = make_huey(settings)
    assert type(huey).__name__ == "SqliteHuey"
    assert (settings.data_dir / "queue.db").exists()
    with pytest.raises(ValueError, match="QUEUE_URL"):
        make_huey(settings.model_copy(update={"queue_url": "amqp://x"}))


def test_cli_subscribe_confirm_and_send(tmp_path, settings, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        add_paper(conn, "2405.00001", "Monday paper", featured=MONDAY, upvotes=1)
    monkeypatch.setenv("PAPERFEED_DATABASE_URL", url)
    monkeypatch.setenv("PAPERFEED_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PAPERFEED_SECRET_KEY", settings.secret_key)
    runner = CliRunner()
    assert runner.invoke(app, ["digest", "subscribe", "cli@example.org"]).exit_code == 0
    assert len(mail.list_outbox(settings)) == 1  # default backend: the local outbox
    body = mail.read_outbox(settings, 1).get_body(("plain",)).get_content()
    token = body.split("/subscribe/confirm/")[1].split()[0]
    assert runner.invoke(app, ["digest", "confirm", token + "x"]).exit_code == 1
    assert runner.invoke(app, ["digest", "confirm", token]).exit_code == 0
    dry = runner.invoke(app, ["digest", "send", "--edition", "2024-05-06", "--dry-run"])
    assert dry.exit_code == 0 and "cli@example.org: 1 papers" in dry.output
    assert "[trending] 2405.00001 Monday paper" in dry.output
    assert len(mail.list_outbox(settings)) == 1  # dry run sent nothing
    weekend = runner.invoke(app, ["digest", "send", "--edition", "2024-05-11"])
    assert weekend.exit_code == 0 and "no daily:2024-05-11 edition" in weekend.output
    sent = runner.invoke(app, ["digest", "send", "--edition", "2024-05-06"])
    assert sent.exit_code == 0 and "sent 1," in sent.output
    again = runner.invoke(app, ["digest", "send", "--edition", "2024-05-06"])
    assert again.exit_code == 0 and "sent 0," in again.output
    assert len(mail.list_outbox(settings)) == 2
    bad = runner.invoke(app, ["digest", "send", "--edition", "May 6"])
    assert bad.exit_code == 2
    engine.dispose()


def test_cli_enqueue_plans_and_queues_send_jobs(tmp_path, settings, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        add_paper(conn, "2405.00001", "Monday paper", featured=MONDAY, upvotes=1)
        add_subscriber(conn, "a@example.org")
        add_subscriber(conn, "b@example.org")
    monkeypatch.setenv("PAPERFEED_DATABASE_URL", url)
    monkeypatch.setenv("PAPERFEED_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    args = ["digest", "enqueue", "--edition", "2024-05-06", "--jobs", "3"]
    queued = runner.invoke(app, args)
    assert queued.exit_code == 0, queued.output
    assert "daily:2024-05-06: planned 2 new message(s), queued 3 send job(s)" in queued.output
    again = runner.invoke(app, args)  # idempotent planning; the extra jobs will find nothing
    assert "planned 0 new message(s)" in again.output
    huey = make_huey(settings)  # the default queue: SQLite under the data dir
    assert huey.pending_count() == 6
    with db.read(engine) as conn:
        assert conn.execute(select(DigestSend.status)).scalars().all() == ["pending"] * 2
    weekend = runner.invoke(app, ["digest", "enqueue", "--edition", "2024-05-11"])
    assert weekend.exit_code == 0 and "no daily:2024-05-11 edition" in weekend.output
    assert huey.pending_count() == 6
    engine.dispose()
