"""CPU time per listing page with the demo data: cached card parts + per-viewer vote controls.

Usage: python bench/card_render.py [--requests 200]
In-process (FastAPI TestClient) on a temp on-disk SQLite loaded with the demo sample; prints the
p50 / p90 CPU milliseconds (process time: wall time on a shared machine mostly measures the
queue for a core) of each page, signed out and signed in with some upvotes of one's own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from paperfeed import accounts, db, papers, votes
from paperfeed.app import create_app
from paperfeed.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
import browser_support as bs

PAGES = ["/papers", "/papers/month/2026-07", "/papers/trending", "/papers?q=agent"]
PASSWORD = "bench-password-0123"


def cpu_ms(client: TestClient, path: str, n: int) -> tuple[int, float, float]:
    for _ in range(10):
        r = client.get(path)  # warm the listing cache and the templates
    samples = []
    for _ in range(n):
        t0 = time.process_time()
        r = client.get(path)
        samples.append((time.process_time() - t0) * 1000)
    samples.sort()
    cards = r.text.count('<article class="card"')
    return cards, statistics.median(samples), samples[int(len(samples) * 0.9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pf-cards-"))
    settings = Settings(
        database_url=f"sqlite:///{tmp}/bench.db", data_dir=tmp / "data", secret_key="bench"
    )
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, bs.demo_records())
        made = accounts.sign_up(conn, settings, "bench", "bench@example.org", PASSWORD)
        assert made.user_id is not None
        accounts.mark_verified(conn, made.user_id)
        for row in papers.featured_in(conn, papers.Period.parse("month", "2026-07"), limit=30):
            votes.set_vote(conn, made.user_id, row.id, True)
    app = create_app(settings, engine)
    print(f"{'page':28} {'viewer':10} {'cards':>5} {'CPU p50':>8} {'CPU p90':>8}")
    with TestClient(app) as anonymous, TestClient(app) as member:
        member.get("/signin")
        member.post(
            "/signin",
            data={"login": "bench", "password": PASSWORD, "csrf_token": member.cookies["pf_csrf"]},
        )
        for path in PAGES:
            for who, client in (("signed out", anonymous), ("signed in", member)):
                cards, p50, p90 = cpu_ms(client, path, args.requests)
                print(f"{path:28} {who:10} {cards:5} {p50:6.1f} ms {p90:6.1f} ms")


if __name__ == "__main__":
    main()
