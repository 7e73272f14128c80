"""Front page and paper page latency with N papers in an on-disk SQLite (in-process ASGI).

Usage: python bench/web_latency.py [--papers 300000] [--db /tmp/pf-bench.db] [--requests 400]
Measured in-process through the ASGI stack (httpx ASGITransport in one event loop): middleware,
routing, SQL, template rendering; no socket. Prints p50/p99 per page.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import time
from pathlib import Path

import httpx

from paperfeed import db, papers
from paperfeed.app import create_app
from paperfeed.config import Settings
from paperfeed.sources import PaperRecord

WORDS = [
    "learning",
    "model",
    "language",
    "vision",
    "transformer",
    "diffusion",
    "graph",
    "neural",
    "efficient",
    "scaling",
    "data",
    "reasoning",
    "agents",
    "retrieval",
    "benchmark",
    "robust",
    "sparse",
    "attention",
    "quantum",
    "optimal",
    "control",
    "policy",
]


def build(url: str, n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    engine = db.make_engine(url)
    db.upgrade(engine)
    start = dt.date(2024, 1, 1)
    ids: list[str] = []
    t0 = time.perf_counter()
    for base in range(0, n, 5000):
        batch = []
        for i in range(base, min(n, base + 5000)):
            arxiv_id = f"{24 + i // 90000:02d}{1 + (i // 7500) % 12:02d}.{i % 90000:05d}"
            day = start + dt.timedelta(days=i // 400)  # ~400 new papers a day
            featured = day if day.weekday() < 5 and i % 20 == 0 else None  # ~20 a weekday
            batch.append(
                PaperRecord(
                    arxiv_id=arxiv_id,
                    title=" ".join(rng.choices(WORDS, k=8)).title(),
                    source="bench",
                    abstract=" ".join(rng.choices(WORDS, k=150)),
                    authors=[f"Author {rng.randrange(50000)}" for _ in range(rng.randint(1, 8))],
                    categories=[rng.choice(["cs.CL", "cs.LG", "cs.CV", "cs.AI"])],
                    published=day,
                    featured_date=featured,
                    upvotes=rng.randrange(200) if featured else 0,
                    version=1,
                )
            )
            ids.append(arxiv_id)
        with db.transaction(engine) as conn:
            papers.upsert_records(conn, batch)
    print(f"built {n} papers in {time.perf_counter() - t0:.1f} s")
    engine.dispose()
    return ids


async def measure(client: httpx.AsyncClient, paths: list[str]) -> tuple[float, float]:
    times = []
    for path in paths:
        t0 = time.perf_counter()
        r = await client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


async def run(url: str, ids: list[str], requests: int) -> None:
    rng = random.Random(1)
    settings = Settings(database_url=url, data_dir=Path("/tmp/pf-bench-data"))
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        with db.read(app.state.engine) as conn:
            latest = papers.latest_featured_date(conn)
        assert latest is not None
        days = [latest - dt.timedelta(days=rng.randrange(300)) for _ in range(requests)]
        cases = {
            "/papers (front page)": ["/papers"] * requests,
            "/papers/date/D": [f"/papers/date/{d.isoformat()}" for d in days],
            "/papers/week/W": [
                f"/papers/week/{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}" for d in days
            ],
            "/papers/month/M": [f"/papers/month/{d:%Y-%m}" for d in days[: requests // 4]],
            "/papers/{id}": [f"/papers/{rng.choice(ids)}" for _ in range(requests)],
        }
        print(f"{len(ids)} papers, in-process ASGI, {requests} requests per page")
        for name, paths in cases.items():
            await client.get(paths[0])  # warm
            p50, p99 = await measure(client, paths)
            print(f"{name:24s} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--papers", type=int, default=300_000)
    ap.add_argument("--db", default="/tmp/pf-bench-web.db")
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args()
    url = f"sqlite:///{args.db}"
    if not Path(args.db).exists():
        ids = build(url, args.papers)
    else:
        engine = db.make_engine(url)
        with db.read(engine) as conn:
            ids = [p.arxiv_id for p in papers.iter_papers(conn)]
    asyncio.run(run(url, ids, args.requests))


if __name__ == "__main__":
    main()
