"""Shared fixtures: a fresh migrated in-memory SQLite per test, settings, the app client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from paperfeed import db
from paperfeed.config import Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url="sqlite://",
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
