"""Trending page and /api/daily_papers?sort=trending latency: 300k papers, 1M votes, 20k users.

Usage: python bench/trending.py [--papers 300000] [--votes 1000000] [--users 20000]
                                [--db /tmp/pf-trending.db] [--requests 300] [--rebuild]
Rows are generated with executemany straight into an on-disk SQLite (the schema comes from the
migrations; hotness from paperfeed.ranking, as upsert_records would store it). Requests run
in-process through the ASGI stack (middleware, routing, SQL, rendering; no socket), first with
the listing cache off (every request queries), then on (PAPERFEED_TRENDING_CACHE_S=15).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sqlite3
import statistics
import time
from pathlib import Path

import httpx

from paperfeed import db, ranking
from paperfeed.app import create_app
from paperfeed.config import Settings

WORDS = "learning model language vision transformer diffusion graph neural efficient scaling data "
WORDS += "reasoning agents retrieval benchmark robust sparse attention quantum optimal control"
VOCAB = WORDS.split()
CATS = ["cs.CL", "cs.LG", "cs.CV", "cs.AI", "stat.ML"]
FMT = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DateTime storage format


def build(path: Path, n_papers: int, n_votes: int, n_users: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    t0 = time.perf_counter()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    now = dt.datetime(2026, 8, 21, 12).strftime(FMT)
    con.executemany(
        "INSERT INTO users (id, username, email, password_hash, is_admin, votes_public,"
        " failed_logins, created_at) VALUES (?, ?, ?, 'x', 0, 1, 0, ?)",
        ((u, f"user{u}", f"user{u}@example.org", now) for u in range(1, n_users + 1)),
    )
    # ~270 papers a day over ~3 years; one in five featured (HF-like front pages of ~50/day).
    start = dt.date(2023, 11, 1)
    per_day = max(1, n_papers // 1024)
    featured_ids: list[int] = []
    rows, cats = [], []
    for i in range(1, n_papers + 1):
        day = start + dt.timedelta(days=(i - 1) // per_day)
        featured = day if i % 5 == 0 else None
        if featured:
            featured_ids.append(i)
        cat = rng.choice(CATS)
        rows.append(
            (
                i,
                f"{day:%y%m}.{i:05d}",
                1,
                "[]",
                " ".join(rng.choices(VOCAB, k=8)).title(),
                " ".join(rng.choices(VOCAB, k=120)),
                json.dumps([f"Author {rng.randrange(50000)}" for _ in range(rng.randint(1, 6))]),
                json.dumps([cat]),
                cat,
                day.isoformat(),
                featured.isoformat() if featured else None,
                rng.randrange(3000) if featured and rng.random() < 0.3 else None,
                now,
            )
        )
        cats.append((i, cat))
    con.executemany(
        "INSERT INTO papers (id, arxiv_id, version, versions, title, abstract, authors,"
        " categories, primary_category, published, featured_date, code_stars, created_at,"
        " modified_at, source_upvotes, upvotes, source_comments, num_comments, hotness, hidden,"
        " extra, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,0,0,0,0,0,'{}','bench')",
        [(*r[:13], r[12]) for r in rows],
    )
    con.executemany("INSERT INTO paper_categories (paper_id, category) VALUES (?, ?)", cats)
    # 1M votes, Pareto-skewed towards a few featured papers; (user, paper) pairs are unique.
    counts: dict[int, int] = {}
    votes: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int]] = set()
    while len(votes) < n_votes:
        # Half uniform, half concentrated on a "hot" tenth of the featured papers.
        hot = featured_ids[::10]
        pid = rng.choice(featured_ids if rng.random() < 0.5 else hot)
        k = min(n_votes - len(votes), rng.randint(1, 40))
        taken = counts.get(pid, 0)
        if taken + k > n_users:
            continue
        for user in rng.sample(range(1, n_users + 1), k):
            if (user, pid) not in seen:  # one vote per user and paper, as the PK demands
                seen.add((user, pid))
                votes.append((user, pid, now))
        counts[pid] = taken + k
    con.executemany("INSERT INTO votes (user_id, paper_id, created_at) VALUES (?, ?, ?)", votes)
    con.execute(
        "UPDATE papers SET upvotes = (SELECT count(*) FROM votes v WHERE v.paper_id = papers.id)"
        " WHERE featured_date IS NOT NULL"
    )
    con.execute("UPDATE papers SET num_comments = upvotes / 7 WHERE featured_date IS NOT NULL")
    con.commit()
    # Hotness exactly as the app stores it (ranking.breakdown_for over each row).
    weights = ranking.Weights()
    cur = con.execute(
        "SELECT id, upvotes, num_comments, code_stars, featured_date, published FROM papers"
    )
    updates = []
    for pid, up, nc, stars, feat, pub in cur:
        anchor = ranking.anchor_of(
            dt.date.fromisoformat(feat) if feat else None, dt.date.fromisoformat(pub), None
        )
        b = ranking.breakdown(
            upvotes=up,
            num_comments=nc,
            code_stars=stars,
            stars_growth=None,
            anchor=anchor,
            weights=weights,
        )
        updates.append((b.hotness, pid))
    con.executemany("UPDATE papers SET hotness = ? WHERE id = ?", updates)
    con.commit()
    con.execute("ANALYZE")
    con.close()
    n_v = sqlite3.connect(path).execute("SELECT count(*) FROM votes").fetchone()[0]
    print(
        f"built {n_papers} papers, {n_v} votes, {n_users} users in {time.perf_counter() - t0:.1f} s"
    )


def pct(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[max(0, int(len(values) * 0.99) - 1)]


async def measure(client: httpx.AsyncClient, paths: list[str]) -> tuple[float, ...]:
    """Wall-clock and process-CPU milliseconds per request (p50, p99 of each). On a shared,
    oversubscribed machine wall time includes waiting for a core; CPU time does not."""
    wall, cpu = [], []
    for path in paths:
        t0, c0 = time.perf_counter(), time.process_time()
        r = await client.get(path)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return (*pct(wall), *pct(cpu))


async def run(path: Path, requests: int, cache_s: float) -> None:
    rng = random.Random(1)
    settings = Settings(
        database_url=f"sqlite:///{path}",
        data_dir=Path("/tmp/pf-bench-data"),
        trending_cache_s=cache_s,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    latest = dt.date(2026, 8, 21)
    with db.read(app.state.engine) as conn:
        latest = ranking.window_start(conn, "day") or latest
    days = [latest - dt.timedelta(days=rng.randrange(600)) for _ in range(requests)]
    cases = {
        "/papers/trending?window=day": ["/papers/trending?window=day"] * requests,
        "/papers/trending (week)": ["/papers/trending"] * requests,
        "/papers/trending?window=month": ["/papers/trending?window=month"] * requests,
        "/papers/trending?window=all": ["/papers/trending?window=all"] * requests,
        "/api/daily_papers?sort=trending": ["/api/daily_papers?sort=trending"] * requests,
        "  …&date=<random day>": [
            f"/api/daily_papers?sort=trending&date={d.isoformat()}" for d in days
        ],
        "  …&month=<random month>": [
            f"/api/daily_papers?sort=trending&month={d:%Y-%m}" for d in days[: requests // 3]
        ],
        "/api/v1/trending?window=week": ["/api/v1/trending?window=week"] * requests,
    }
    label = "off (every request queries)" if cache_s == 0 else f"on ({cache_s:g} s TTL)"
    print(f"\nlisting cache {label}; {requests} requests per case, in-process ASGI")
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for name, paths in cases.items():
            await client.get(paths[0])  # warm the page cache and the template
            p50, p99, c50, c99 = await measure(client, paths)
            print(
                f"{name:34s} wall p50 {p50:6.1f} p99 {p99:6.1f} ms"
                f" | cpu p50 {c50:5.1f} p99 {c99:5.1f} ms"
            )
    app.state.engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--papers", type=int, default=300_000)
    ap.add_argument("--votes", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/pf-trending.db"))
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    if args.rebuild or not args.db.exists():
        build(args.db, args.papers, args.votes, args.users)
    size = args.db.stat().st_size / 2**20
    print(f"database {args.db} ({size:.0f} MiB); load average {os.getloadavg()[0]:.1f}")
    asyncio.run(run(args.db, args.requests, cache_s=0))
    asyncio.run(run(args.db, args.requests, cache_s=15))


if __name__ == "__main__":
    main()
