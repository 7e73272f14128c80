"""Upvote throughput: N concurrent users toggling upvotes over real HTTP against uvicorn on
loopback with an on-disk SQLite database; prints requests/s and latency percentiles and checks
that the final counts are exact.

    .venv/bin/python bench/upvotes.py [--users 50] [--toggles 20] [--papers 5] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from paperfeed import accounts, credentials, db, papers
from paperfeed.config import Settings
from paperfeed.sources import PaperRecord


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--toggles", type=int, default=20, help="toggles per user")
    ap.add_argument("--papers", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    settings = Settings(
        database_url=url,
        data_dir=tmp / "data",
        password_memory_kib=1024,
        password_time_cost=1,
        password_parallelism=1,
    )
    engine = db.make_engine(url)
    db.upgrade(engine)
    ids = [f"2405.{20000 + i}" for i in range(args.papers)]
    sessions = []
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn, [PaperRecord(arxiv_id=a, title=a, source="bench", upvotes=10) for a in ids]
        )
        for i in range(args.users):
            made = accounts.sign_up(
                conn, settings, f"bench{i}", f"b{i}@example.org", "pw-0123456789"
            )
            assert made.user_id is not None
            sessions.append(
                credentials.create_session(conn, settings, made.user_id, remember=False)
            )
    engine.dispose()

    port = free_port()
    env = {**os.environ, "PAPERFEED_DATABASE_URL": url, "PAPERFEED_DATA_DIR": str(tmp / "data")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "paperfeed.app:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/static/app.css", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        rng = random.Random(1)
        plans = [[rng.choice(ids) for _ in range(args.toggles)] for _ in range(args.users)]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        start_gate = threading.Barrier(args.users)

        def user(i: int) -> None:
            s = sessions[i]
            with httpx.Client(
                base_url=base,
                timeout=60,
                cookies={"pf_session": s.token, "pf_csrf": s.csrf_token},
                headers={"X-CSRF-Token": s.csrf_token},
            ) as http:
                http.get("/static/app.css")  # open the keep-alive connection
                start_gate.wait()
                for arxiv_id in plans[i]:
                    t = time.perf_counter()
                    r = http.post(f"/api/papers/{arxiv_id}/upvote")
                    dt = time.perf_counter() - t
                    with lock:
                        latencies.append(dt)
                        if r.status_code != 200:
                            errors.append(f"{r.status_code} {r.text[:100]}")

        threads = [threading.Thread(target=user, args=(i,)) for i in range(args.users)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(10)

    engine = db.make_engine(url)
    exact = True
    with db.read(engine) as conn:
        for arxiv_id in ids:
            expected = sum(plan.count(arxiv_id) % 2 for plan in plans)
            row = papers.get_paper(conn, arxiv_id)
            stored = conn.exec_driver_sql(
                "SELECT count(*) FROM votes WHERE paper_id = ?", (row.id,)
            ).scalar()
            exact &= row.upvotes == 10 + expected and stored == expected
    latencies.sort()
    n = len(latencies)
    q = statistics.quantiles(latencies, n=100)
    print(
        f"users={args.users} toggles/user={args.toggles} papers={args.papers} "
        f"workers={args.workers} requests={n} errors={len(errors)}"
    )
    print(f"throughput: {n / wall:.0f} requests/s over {wall:.2f} s")
    print(
        f"latency ms: p50={q[49] * 1000:.1f} p90={q[89] * 1000:.1f} p99={q[98] * 1000:.1f} "
        f"max={latencies[-1] * 1000:.1f}"
    )
    print(f"final counts exact: {exact}")
    if errors:
        print("first errors:", errors[:3])
    return 0 if exact and not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
