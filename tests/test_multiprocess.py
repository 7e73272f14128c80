"""Stateless web processes: `paperfeed serve --workers 2` behaves as one app (on-disk SQLite or
PostgreSQL), with metrics summed over the workers and one JSON log line per request."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from paperfeed import db, papers
from paperfeed.sources import PaperRecord

PAPERFEED = str(Path(sys.executable).parent / "paperfeed")
REQUESTS = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(settings, engine, tmp_path):
    url = settings.database_url
    if url == "sqlite://":  # processes need a database they can all open
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn,
            [PaperRecord(arxiv_id="2405.15738", title="Shared paper", source="t", upvotes=3)],
        )
    from paperfeed import accounts, credentials

    cheap = settings.model_copy(
        update={"password_memory_kib": 1024, "password_time_cost": 1, "password_parallelism": 1}
    )
    with db.transaction(engine) as conn:
        made = accounts.sign_up(conn, cheap, "ada", "ada@example.org", "pw-0123456789")
        assert made.user_id is not None
        session = credentials.create_session(conn, cheap, made.user_id, remember=False)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PAPERFEED_", "PROMETHEUS_"))},
        "PAPERFEED_DATABASE_URL": url,
        "PAPERFEED_DATA_DIR": str(tmp_path / "data"),
        "PAPERFEED_SECRET_KEY": "s" * 40,
    }
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [PAPERFEED, "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # worker start-up on a busy 2-core machine
        ready = 0
        while ready < 2 and time.monotonic() < deadline:  # both workers up (each logs startup)
            time.sleep(0.3)
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            ready = (tmp_path / "server.log").read_text().count("Application startup complete")
        assert ready == 2, (tmp_path / "server.log").read_text()
        yield base, tmp_path, session
    finally:  # never leave a server behind, whatever failed
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_two_workers_share_sessions_metrics_and_logs(served):
    base, tmp_path, session = served
    cookies = {"pf_session": session.token, "pf_csrf": session.csrf_token}
    for i in range(REQUESTS):  # a new connection each time: spread over the workers
        with httpx.Client(base_url=base, cookies=cookies if i % 2 else None) as c:
            r = c.get("/papers/2405.15738")
            assert r.status_code == 200 and "Shared paper" in r.text
            # The session (a database row) is recognised by whichever worker answers.
            assert ('href="/users/ada"' in r.text) == bool(i % 2)
    pids = {p.name.split("_")[-1] for p in (tmp_path / "data" / "metrics").glob("histogram_*.db")}
    assert len(pids) == 2, "both workers should have served requests"
    for _ in range(4):  # whichever worker answers, it reports the sum over both
        with httpx.Client(base_url=base) as c:
            body = c.get("/metrics").text
        line = next(
            ln
            for ln in body.splitlines()
            if ln.startswith("paperfeed_http_request_duration_seconds_count{")
            and 'route="/papers/{arxiv_id:path}"' in ln
        )
        assert float(line.rsplit(" ", 1)[1]) == REQUESTS
        with httpx.Client(base_url=base) as c:
            assert c.get("/readyz").json()["status"] == "ok"
    lines = [
        json.loads(ln)
        for ln in (tmp_path / "server.log").read_text().splitlines()
        if ln.startswith("{") and '"paperfeed.access"' in ln
    ]
    paper_lines = [ln for ln in lines if ln["path"] == "/papers/{arxiv_id:path}"]
    assert len(paper_lines) == REQUESTS
    assert len({ln["request_id"] for ln in paper_lines}) == REQUESTS


def test_votes_from_both_workers_are_counted_exactly(served):
    """Upvote toggles spread over two processes: the stored count is exact."""
    base, _, session = served
    cookies = {"pf_session": session.token, "pf_csrf": session.csrf_token}
    states = []
    for _ in range(6):  # toggle on/off, each on a fresh connection (either worker)
        with httpx.Client(base_url=base, cookies=cookies) as c:
            r = c.post(
                "/api/papers/2405.15738/upvote", headers={"X-CSRF-Token": session.csrf_token}
            )
            assert r.status_code == 200, r.text
            states.append(r.json())
    with httpx.Client(base_url=base) as c:
        paper = c.get("/api/papers/2405.15738").json()
    assert paper["upvotes"] == 3, paper  # 3 from the source; six toggles end where they began
    assert states[-1] != states[-2]


def test_idle_keep_alive_connection_outlives_clients_idle_timeouts(served):
    """A connection idle for longer than uvicorn's default 5 s is still open, so a client (or
    nginx) reusing it after a pause is not answered with a closed socket."""
    base, _, _ = served
    port = int(base.rsplit(":", 1)[1])
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for pause in (0.0, 6.0):
            time.sleep(pause)
            sock.sendall(request)
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = sock.recv(4096)
                assert chunk, f"the server closed the connection after {pause} s idle"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
            head, _, body = reply.partition(b"\r\n\r\n")
            length = int(
                next(
                    ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")
                ).split(b":")[1]
            )
            while len(body) < length:  # read the rest of the body before the next request
                body += sock.recv(4096)
