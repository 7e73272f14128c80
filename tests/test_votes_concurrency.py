"""Upvote and comment counts stay exact under many parallel requests against a real server
and an on-disk DB (more concurrent writers than worker threads: no lock/thread deadlock)."""

from __future__ import annotations

import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from paperfeed import accounts, credentials, db, papers
from paperfeed.app import create_app
from paperfeed.config import Settings
from paperfeed.sources import PaperRecord

USERS = 50
TOGGLES_PER_USER = 6
COMMENTS_PER_USER = 2
PAPERS = ["2405.10001", "2405.10002"]


@pytest.fixture
def server(tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'votes.db'}",
        data_dir=tmp_path / "data",
        password_time_cost=1,
        password_memory_kib=1024,
        password_parallelism=1,
    )
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn, [PaperRecord(arxiv_id=a, title=a, source="test", upvotes=7) for a in PAPERS]
        )
    app = create_app(settings, engine)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield settings, engine, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    engine.dispose()


def test_parallel_toggles_keep_counts_exact(server):
    settings, engine, base = server
    sessions = []
    with db.transaction(engine) as conn:
        for i in range(USERS):
            uid = accounts.sign_up(conn, settings, f"user{i}", f"u{i}@example.org", "pw-0123456789")
            accounts.mark_verified(conn, uid.user_id)
            s = credentials.create_session(conn, settings, uid.user_id, remember=False)
            sessions.append(s)
    rng = random.Random(4)
    plans = [[rng.choice(PAPERS) for _ in range(TOGGLES_PER_USER)] for _ in range(USERS)]

    def run(i):
        s = sessions[i]
        with httpx.Client(
            base_url=base,
            cookies={"pf_session": s.token, "pf_csrf": s.csrf_token},
            headers={"X-CSRF-Token": s.csrf_token},
            timeout=60,
        ) as http:
            for n, arxiv_id in enumerate(plans[i]):
                r = http.post(f"/api/papers/{arxiv_id}/upvote")
                assert r.status_code == 200, r.text
                if n < COMMENTS_PER_USER:  # writes through the WriteConn dependency
                    r = http.post(f"/api/papers/{PAPERS[0]}/comments", json={"body": f"c{i}"})
                    assert r.status_code == 201, r.text

    with ThreadPoolExecutor(max_workers=USERS) as pool:
        list(pool.map(run, range(USERS)))

    with db.read(engine) as conn:
        for arxiv_id in PAPERS:
            expected_votes = sum(plan.count(arxiv_id) % 2 for plan in plans)
            row = papers.get_paper(conn, arxiv_id)
            rows = conn.exec_driver_sql(
                "SELECT count(*) FROM votes WHERE paper_id = ?", (row.id,)
            ).scalar()
            assert rows == expected_votes
            assert row.upvotes == 7 + expected_votes
        first = papers.get_paper(conn, PAPERS[0])
        assert first.num_comments == USERS * COMMENTS_PER_USER
