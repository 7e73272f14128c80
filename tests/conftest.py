"""Shared fixtures: a fresh migrated database per test, settings, the app client.

The database is an in-memory SQLite unless PAPERFEED_TEST_DATABASE_URL names a PostgreSQL
server (`make test` sets it for its second pass, see scripts/pg.sh): then every test gets its
own database, cloned from a template migrated once per session (CREATE DATABASE ... TEMPLATE
STRATEGY FILE_COPY takes ~0.07 s here; running the migrations per test takes ~1 s).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from paperfeed import db
from paperfeed.config import Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


# Tests read the environment only for this switch; the product reads it only in config.py.
TEST_DATABASE_URL = os.environ.get("PAPERFEED_TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` need the PostgreSQL pass; they skip on the SQLite pass."""
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PAPERFEED_TEST_DATABASE_URL (the PostgreSQL pass)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a migrated template database on the test server (one per test session)."""
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # Drop leftovers of killed sessions (their pid is in the name); never a live one's.
        for (name,) in conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE 'pft_%'")
        ):
            pid = name.split("_")[1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        tpl = f"pft_{os.getpid()}_tpl"
        conn.execute(text(f'DROP DATABASE IF EXISTS "{tpl}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{tpl}"'))
    tpl_url = make_url(TEST_DATABASE_URL).set(database=tpl).render_as_string(hide_password=False)
    eng = db.make_engine(tpl_url)
    db.upgrade(eng)
    eng.dispose()
    yield tpl
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{tpl}" WITH (FORCE)'))
    admin.dispose()


def _fresh_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database: in-memory SQLite, or a clone of the PostgreSQL template."""
    if not ON_POSTGRES:
        yield "sqlite://"
        return
    tpl = request.getfixturevalue("pg_template")
    name = f"pft_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}" STRATEGY FILE_COPY'))
    yield make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    yield from _fresh_database(request)


@pytest.fixture(scope="module")
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database shared by one module's read-only tests (a catalog)."""
    yield from _fresh_database(request)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret",
        arxiv_delay_s=0.0,
        # argon2id at its cheapest: tests exercise the logic, not the cost
        password_time_cost=1,
        password_memory_kib=1024,
        password_parallelism=1,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = db.make_engine(settings.database_url)
    if not ON_POSTGRES:  # PostgreSQL clones come migrated from the template
        db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def app(settings: Settings, engine: Engine):
    from paperfeed.app import create_app

    return create_app(settings, engine)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://testserver") as c:
        yield c


# ---- Community: users, signed-in clients, papers, a loopback arXiv API -------------------

ARXIV_FIXTURES = SHARED_DATA / "fixtures" / "arxiv_api" / "xml"


@pytest.fixture
def make_user(engine, settings):
    """Create a (verified by default) user directly; returns (username, password)."""
    from paperfeed import accounts

    def make(name: str, *, verified: bool = True, admin: bool = False, password=None):
        password = password or f"pw-{name}-0123456789"
        with db.transaction(engine) as conn:
            result = accounts.sign_up(conn, settings, name, f"{name.lower()}@example.org", password)
            assert result.user_id is not None
            if verified:
                accounts.mark_verified(conn, result.user_id)
            if admin:
                from paperfeed import moderation

                moderation.set_admin(conn, None, name, True)
        return name, password

    return make


def sign_in(client, login: str, password: str, remember: bool = False):
    """Sign a TestClient in through the real form; returns the response."""
    client.get("/signin")
    data = {"login": login, "password": password, "csrf_token": client.cookies.get("pf_csrf")}
    if remember:
        data["remember"] = "true"
    return client.post("/signin", data=data, follow_redirects=False)


def csrf(client) -> str:
    if not client.cookies.get("pf_csrf"):
        client.get("/signin")
    return client.cookies.get("pf_csrf")


@pytest.fixture
def user_client(app, make_user):
    """Factory: a new TestClient signed in as a new verified user."""
    from fastapi.testclient import TestClient

    clients = []

    def make(name: str, **kwargs):
        login, password = make_user(name, **kwargs)
        c = TestClient(app, base_url="http://testserver")
        clients.append(c)
        r = sign_in(c, login, password)
        assert r.status_code == 303, r.text
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def paper(engine):
    """One featured paper, 2405.00001, with 3 upvotes reported by its source."""
    import datetime as dt

    from paperfeed import papers
    from paperfeed.sources import PaperRecord

    rec = PaperRecord(
        arxiv_id="2405.00001",
        title="Attention is a $\\lambda$-calculus",
        source="test",
        abstract="We show things.",
        authors=["Ada Lovelace", "Alan Turing"],
        categories=["cs.CL", "cs.LG"],
        upvotes=3,
        num_comments=2,
        featured_date=dt.date(2024, 5, 27),
        published=dt.date(2024, 5, 20),
    )
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, [rec])
        return papers.get_paper(conn, "2405.00001")


@pytest.fixture
def arxiv_server(settings):
    """A real HTTP server on loopback answering like the arXiv API from recorded responses."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    if not ARXIV_FIXTURES.exists():
        pytest.skip("arXiv fixtures are not present")
    by_id = {
        "1605.08386": "api2026_id_list_single_1605.08386.xml",
        "astro-ph/0601001": "api2026_id_list_oldstyle_astro-ph_0601001.xml",
    }
    state = {"fail": False, "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            if state["fail"]:
                self.send_response(503)
                self.end_headers()
                return
            ids = parse_qs(urlsplit(self.path).query).get("id_list", [""])[0]
            name = by_id.get(ids, "api2026_id_list_no_results.xml")
            body = (ARXIV_FIXTURES / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.arxiv_api_url = f"http://127.0.0.1:{server.server_address[1]}/api/query"
    yield state
    server.shutdown()
    server.server_close()


def outbox_messages(settings):
    """Messages in the Maildir outbox, oldest first."""
    import mailbox

    if not settings.outbox_dir.exists():
        return []
    box = mailbox.Maildir(settings.outbox_dir, create=False)
    return sorted(box, key=lambda m: m["Date"] or "")


def mail_link(message, path: str) -> str:
    """The first link to `path` in a plain-text message, as a path+query."""
    import re

    text = message.get_payload(decode=True).decode() if not message.is_multipart() else ""
    if message.is_multipart():
        text = message.get_payload(0).get_payload(decode=True).decode()
    m = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"[^\s]*)", text)
    assert m, text
    return m.group(1)
