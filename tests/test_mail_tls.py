"""SMTP over STARTTLS and implicit TLS with AUTH, against real aiosmtpd servers on loopback.

A throwaway CA and server certificate are made per test session with trustme. Failures that a
rerun cannot fix (wrong password, untrusted certificate, TLS required but not configured) must
stop the run with a clear message, send nothing in plain text, bounce no one and lose nothing.
"""

from __future__ import annotations

import ssl
from collections import Counter
from pathlib import Path

import pytest
import trustme
from sqlalchemy import select
from typer.testing import CliRunner

from digest_support import MONDAY, add_paper, add_subscriber, smtp_settings
from paperfeed import db, doctor, mail
from paperfeed.cli import app
from paperfeed.digest import Edition
from paperfeed.digest_send import send_edition
from paperfeed.models import DigestSend, Subscriber
from smtp_sink import Sink, SinkHandler

# aiosmtpd warns about AUTH without its STARTTLS flag; our implicit-TLS server is all TLS.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

EDITION = Edition("daily", MONDAY)
USER, PASSWORD = "digest-sender", "correct horse battery staple"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(
    issuer: trustme.CA, names: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issuer.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    return _server_context(ca)


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _sink(mode: str, context: ssl.SSLContext, handler: SinkHandler | None = None) -> Sink:
    users = {USER: PASSWORD}
    if mode == "starttls":
        return Sink(handler, starttls=context, users=users)
    return Sink(handler, tls=context, users=users)


def _tls_settings(settings, port: int, mode: str, ca_file: str, **overrides):
    values = {
        "smtp_tls": mode,
        "smtp_ca_file": ca_file,
        "smtp_user": USER,
        "smtp_password": PASSWORD,
        "smtp_timeout_s": 5,
    }
    return smtp_settings(settings, port, **(values | overrides))


def _subscribers(engine, n: int) -> list[str]:
    with db.transaction(engine) as conn:
        add_paper(conn, "2405.00001", "Only paper", featured=MONDAY, upvotes=5)
        emails = [f"t{i}@example.org" for i in range(n)]
        for address in emails:
            add_subscriber(conn, address)
    return emails


def _assert_nothing_lost(engine, n: int) -> None:
    """Every row still pending and unclaimed, nobody's bounce count touched."""
    with db.read(engine) as conn:
        rows = conn.execute(select(DigestSend.status, DigestSend.claimed_by)).all()
        bounces = conn.execute(select(Subscriber.status, Subscriber.bounce_count)).all()
    assert rows == [("pending", None)] * n
    assert bounces == [("active", 0)] * n


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_digest_and_account_mail_over_tls_with_auth(
    engine, settings, server_context, ca_file, mode
):
    emails = _subscribers(engine, 3)
    with _sink(mode, server_context) as sink:
        s = _tls_settings(settings, sink.port, mode, ca_file)
        report = send_edition(engine, s, EDITION)
        assert (report.sent, report.ok) == (3, True), report
        assert mail.send(s, "new-user@example.org", "Verify your address", "link\n") is not None
    received = sink.handler.messages
    assert Counter(m.recipient for m in received) == dict.fromkeys(
        [*emails, "new-user@example.org"], 1
    )
    # Every message crossed an encrypted, authenticated session.
    assert {(m.tls, m.user) for m in received} == {("TLSv1.3", USER)}


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_connection_dropped_mid_run_over_tls_is_retried(
    engine, settings, server_context, ca_file, mode
):
    emails = _subscribers(engine, 5)
    handler = SinkHandler(drop_at={1, 3})
    with _sink(mode, server_context, handler) as sink:
        s = _tls_settings(settings, sink.port, mode, ca_file, mail_retry_backoff_s=0.01)
        report = send_edition(engine, s, EDITION)
        assert (report.sent, report.ok) == (5, True), report
    assert Counter(m.recipient for m in handler.messages) == dict.fromkeys(emails, 1)


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_wrong_password_stops_the_run_and_loses_nothing(
    engine, settings, server_context, ca_file, mode, caplog
):
    _subscribers(engine, 3)
    with _sink(mode, server_context) as sink:
        s = _tls_settings(settings, sink.port, mode, ca_file, smtp_password="wrong")
        report = send_edition(engine, s, EDITION)
        assert report.sent == 0 and not report.ok
        assert "authentication as 'digest-sender'" in report.aborted
        assert "535" in report.aborted and "PAPERFEED_SMTP_PASSWORD" in report.aborted
        _assert_nothing_lost(engine, 3)
        # An account mail (sign-up verification) is reported, not raised: the sign-up stands.
        assert mail.send(s, "new-user@example.org", "Verify", "link\n") is None
        assert "authentication as 'digest-sender'" in caplog.text
        # With the right password, the rerun delivers each message once.
        report = send_edition(engine, s.model_copy(update={"smtp_password": PASSWORD}), EDITION)
        assert (report.sent, report.ok) == (3, True)
    assert len(sink.handler.messages) == 3


def test_mail_commands_report_auth_failure(
    settings, server_context, ca_file, monkeypatch, tmp_path
):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("PAPERFEED_DATABASE_URL", url)
    with _sink("starttls", server_context) as sink:
        for name, value in {
            "MAIL_BACKEND": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(sink.port),
            "SMTP_TLS": "starttls",
            "SMTP_CA_FILE": ca_file,
            "SMTP_USER": USER,
            "SMTP_PASSWORD": "wrong",
            "DATA_DIR": str(settings.data_dir),
        }.items():
            monkeypatch.setenv(f"PAPERFEED_{name}", value)
        result = CliRunner().invoke(app, ["mail", "test", "me@example.org"])
        assert result.exit_code == 1
        assert "not sent: SMTP authentication" in result.output
        result = CliRunner().invoke(app, ["digest", "subscribe", "new@example.org"])
        assert result.exit_code == 1 and "confirmation mail not sent: SMTP auth" in result.output
        monkeypatch.setenv("PAPERFEED_SMTP_PASSWORD", PASSWORD)
        result = CliRunner().invoke(app, ["mail", "test", "me@example.org"])
        assert result.exit_code == 0 and result.output.startswith("sent <")
    assert [m.recipient for m in sink.handler.messages] == ["me@example.org"]


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_untrusted_certificate_is_refused_never_downgraded(
    engine, settings, ca_file, mode, tmp_path
):
    _subscribers(engine, 3)
    impostor = _server_context(trustme.CA())  # a certificate from a CA we do not trust
    with _sink(mode, impostor) as sink:
        for trusted in (ca_file, ""):  # our CA bundle, then the system's CAs
            s = _tls_settings(settings, sink.port, mode, trusted)
            report = send_edition(engine, s, EDITION)
            assert report.sent == 0 and "is not trusted" in report.aborted, report
            assert "PAPERFEED_SMTP_CA_FILE" in report.aborted
            _assert_nothing_lost(engine, 3)
        # Switching verification off is an explicit, separate decision (doctor warns about it).
        s = _tls_settings(settings, sink.port, mode, ca_file, smtp_tls_verify=False)
        assert send_edition(engine, s, EDITION).sent == 3
        checked = doctor.check_mail(s, engine)
        assert [(r.name, r.status) for r in checked] == [("mail", "ok"), ("mail.tls", "warn")]
    assert {m.tls for m in sink.handler.messages} == {"TLSv1.3"}  # never plain text


def test_host_name_must_match_the_certificate(settings, ca, ca_file):
    other_name = _server_context(ca, ("smtp.example.org",))  # our CA, someone else's name
    with _sink("tls", other_name) as sink:
        s = _tls_settings(settings, sink.port, "tls", ca_file)
        with pytest.raises(mail.MailError, match=r"not trusted.*mismatch"):
            mail.send_mail(s, mail.build_message(s, to="a@example.org", subject="x", text="x"))
    assert sink.handler.messages == []


@pytest.mark.parametrize("user", ["", USER])
def test_starttls_required_but_not_configured_fails_clearly(engine, settings, server_context, user):
    _subscribers(engine, 3)
    with _sink("starttls", server_context) as sink:
        s = smtp_settings(
            settings, sink.port, smtp_tls="none", smtp_user=user, smtp_password=PASSWORD
        )
        report = send_edition(engine, s, EDITION)
        assert report.sent == report.bounced == 0 and not report.ok
        assert "PAPERFEED_SMTP_TLS" in report.aborted, report
        # Without a user the server answers MAIL with 530; with one, it offers no AUTH in clear.
        assert ("530" if not user else "AUTH extension not supported") in report.aborted
        _assert_nothing_lost(engine, 3)
        fail = doctor.check_mail(s, engine)
        assert fail[0].status == "fail" and "PAPERFEED_SMTP_TLS" in fail[0].detail
    assert sink.handler.messages == []


def test_tls_against_a_plain_server_and_bad_settings_fail_clearly(settings, ca_file, tmp_path):
    msg = mail.build_message(settings, to="a@example.org", subject="x", text="x")
    with Sink() as sink:  # plain SMTP, no TLS at all
        s = smtp_settings(settings, sink.port, smtp_tls="tls", smtp_ca_file=ca_file)
        with pytest.raises(mail.MailError, match="TLS handshake") as exc:
            mail.send_mail(s, msg)
        assert not isinstance(exc.value, mail.TransientMailError)
        s = smtp_settings(settings, sink.port, smtp_tls="starttls", smtp_ca_file=ca_file)
        with pytest.raises(mail.MailError, match="STARTTLS extension not supported"):
            mail.send_mail(s, msg)  # never falls back to plain text
        for bad, match in [
            ({"smtp_tls": "ssl"}, "unknown PAPERFEED_SMTP_TLS"),
            ({"smtp_tls": "tls", "smtp_ca_file": str(tmp_path / "nope.pem")}, "CA_FILE"),
        ]:
            with pytest.raises(mail.MailError, match=match):
                mail.send_mail(smtp_settings(settings, sink.port, **bad), msg)
    assert sink.handler.messages == []


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_doctor_checks_tls_certificate_and_auth(engine, settings, server_context, ca_file, mode):
    with _sink(mode, server_context) as sink:
        good = _tls_settings(settings, sink.port, mode, ca_file)
        results = doctor.check_mail(good, engine)
        assert [(r.name, r.status) for r in results] == [("mail", "ok")]
        assert "certificate verified, authenticated as digest-sender" in results[0].detail
        wrong = doctor.check_mail(good.model_copy(update={"smtp_password": "x"}), engine)
        assert wrong[0].status == "fail" and "authentication" in wrong[0].detail
        untrusted = doctor.check_mail(good.model_copy(update={"smtp_ca_file": ""}), engine)
        assert untrusted[0].status == "fail" and "not trusted" in untrusted[0].detail
    assert sink.handler.messages == []
