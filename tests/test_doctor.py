"""`paperfeed doctor`: each check passes on a good setup and names the fix on a bad one."""

import socket
import threading

import pytest
from typer.testing import CliRunner

from paperfeed import doctor
from paperfeed.cli import app as cli

GOOD_SECRET = "x" * 40


def statuses(results):
    return {r.name: r.status for r in results}


def test_healthy_local_setup_passes(settings, engine):
    from paperfeed.search import index_pending

    settings = settings.model_copy(update={"secret_key": GOOD_SECRET, "search_semantic": False})
    # PostgreSQL: the keyword column is never behind, its word counts (IDF) may be.
    before = (
        {"search": "ok", "search.words": "warn"}
        if engine.dialect.name == "postgresql"
        else {"search": "fail"}
    )
    assert {r.name: r.status for r in doctor.check_search(settings, engine)} == before
    index_pending(engine, settings)
    results = doctor.run(settings, engine)
    assert all(r.status == "ok" for r in results), results
    assert {"config.base_url", "config.secret_key", "database", "mail", "search", "queue"} <= (
        statuses(results).keys()
    )


def test_missing_sentence_vectors_warn_until_indexed(settings, engine):
    from sqlalchemy import update

    from paperfeed import db
    from paperfeed.models import Embedding
    from paperfeed.search import index_pending
    from search_catalog import PAPERS, add_papers

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[:2])
    index_pending(engine, settings)
    assert "search.sentences" not in statuses(doctor.check_search(settings, engine))
    with db.transaction(engine) as conn:  # as after migration 0010 on an older catalog
        conn.execute(update(Embedding).values(sentences=None))
    warned = [r for r in doctor.check_search(settings, engine) if r.name == "search.sentences"]
    assert [(r.status, r.detail.split()[0]) for r in warned] == [("warn", "2")]
    assert "paperfeed index" in warned[0].fix
    off = settings.model_copy(update={"search_sentences": False})
    assert "search.sentences" not in statuses(doctor.check_search(off, engine))
    assert index_pending(engine, settings).sentences == 2
    assert "search.sentences" not in statuses(doctor.check_search(settings, engine))


def test_public_instance_with_default_secret_and_insecure_cookies_fails(settings, engine):
    settings = settings.model_copy(
        update={"base_url": "https://papers.example.org", "secret_key": doctor.DEFAULT_SECRET}
    )
    by_name = {r.name: r for r in doctor.run(settings, engine)}
    assert by_name["config.secret_key"].status == "fail"
    assert "PAPERFEED_SECRET_KEY" in by_name["config.secret_key"].fix
    assert by_name["config.cookie_secure"].status == "fail"
    assert by_name["mail"].status == "warn"  # outbox on a public instance


def test_bad_base_url_and_unmigrated_database_fail(settings, tmp_path):
    from paperfeed import db

    empty = db.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    settings = settings.model_copy(update={"base_url": "papers.example.org"})
    by_name = {r.name: r for r in doctor.run(settings, empty)}
    assert by_name["config.base_url"].status == "fail"
    assert by_name["database"].status == "fail"
    assert by_name["database"].fix == "run `paperfeed db upgrade`"


def test_unreachable_database_fails_with_a_fix(settings):
    from paperfeed import db

    dead = db.make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    by_name = {r.name: r for r in doctor.run(settings, dead)}
    assert by_name["database"].status == "fail"
    assert "cannot connect" in by_name["database"].detail


@pytest.fixture
def smtp_server():
    """A minimal real SMTP responder on loopback (greeting, EHLO, NOOP, QUIT)."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn, conn.makefile("rwb") as f:
                f.write(b"220 test ESMTP\r\n")
                f.flush()
                for line in f:
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        f.write(b"250-test\r\n250 OK\r\n")
                    elif verb == b"QUIT":
                        f.write(b"221 bye\r\n")
                        f.flush()
                        break
                    else:
                        f.write(b"250 OK\r\n")
                    f.flush()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def test_smtp_backend_reachable_and_refused(settings, engine, smtp_server):
    smtp = settings.model_copy(
        update={"mail_backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp_server}
    )
    assert statuses(doctor.check_mail(smtp, engine)) == {"mail": "ok"}
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused = doctor.check_mail(smtp.model_copy(update={"smtp_port": closed}), engine)
    assert refused[0].status == "fail" and "PAPERFEED_SMTP_HOST" in refused[0].fix


def test_unreachable_queue_fails(settings, engine):
    bad = settings.model_copy(update={"queue_url": "nonsense://queue"})
    result = doctor.check_queue(bad, engine)[0]
    assert result.status == "fail" and "PAPERFEED_QUEUE_URL" in result.fix


def test_unwritable_outbox_fails(settings, engine, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bad = settings.model_copy(update={"data_dir": blocker})
    assert doctor.check_mail(bad, engine)[0].status == "fail"


def test_subsystems_plug_in_checks_and_a_crash_is_a_failure(settings, engine):
    @doctor.check("test-index")
    def index_check(settings, engine):
        raise RuntimeError("index corrupt")

    try:
        by_name = {r.name: r for r in doctor.run(settings, engine)}
        assert by_name["test-index"].status == "fail"
        assert "index corrupt" in by_name["test-index"].detail
    finally:
        del doctor._CHECKS["test-index"]


def test_cli_exit_status(settings, engine, tmp_path):
    from paperfeed import db

    url = settings.database_url
    if url == "sqlite://":  # an in-memory database is private to its engine: use a file
        url = f"sqlite:///{tmp_path / 'doctor.db'}"
        db.upgrade(db.make_engine(url))
    env = {
        "PAPERFEED_DATABASE_URL": url,
        "PAPERFEED_DATA_DIR": str(settings.data_dir),
        "PAPERFEED_SECRET_KEY": GOOD_SECRET,
        "PAPERFEED_SEARCH_SEMANTIC": "false",
    }
    from paperfeed.search import index_pending

    index_pending(db.make_engine(url), settings.model_copy(update={"search_semantic": False}))
    ok = CliRunner().invoke(cli, ["doctor"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "All checks passed." in ok.output
    bad = CliRunner().invoke(cli, ["doctor"], env={**env, "PAPERFEED_BASE_URL": "nope"})
    assert bad.exit_code == 1
    assert "fix: set PAPERFEED_BASE_URL" in bad.output
