"""PostgreSQL keyword search cost per query over a bench/load.py catalog (300k real-text papers).

Usage:
  python bench/load.py --db postgresql+psycopg://postgres@127.0.0.1:PORT/pfbench --build-only
  python bench/pg_search.py --db postgresql+psycopg://postgres@127.0.0.1:PORT/pfbench [--runs 3]
  python bench/pg_search.py --db URL --explain "attention"   # EXPLAIN ANALYZE of every statement
  python bench/pg_search.py --db URL --similar 300   # a paper page's similar papers, kept or not
  python bench/pg_search.py --db URL --hybrid 200    # the whole search(): web and database CPU
  python bench/pg_search.py --db URL --hybrid 200 --statements   # ... and time per statement

Times what one search request asks of PostgreSQL: the keyword backend's search() for the
pool the page fuses (service.POOL = 100 candidates) plus the exact-title lookup, one query at
a time over one connection. A fixed query set in four groups (broad one-word, two-word,
title-length, author names) and 100 queries drawn like bench/load.py's users'. Each query runs
--runs times; its time is the fastest run's (wall clock of a single connection, so it is the
database's time with the least interference from other load), and the CPU the database
backend used over all runs is divided by their number (CPU time holds on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
from load import make_queries
from paperfeed import db
from paperfeed.search.pg import PgKeywordBackend
from paperfeed.search.query import parse_query
from paperfeed.search.service import POOL

GROUPS = {
    "one word": ["attention", "learning", "quantum", "graph", "diffusion", "neural"],
    "two words": [
        "language models",
        "reinforcement learning",
        "graph neural",
        "image segmentation",
        "dark matter",
        "convex optimization",
    ],
    "title-length": [
        "graph neural networks for molecules",
        "deep residual learning for image recognition",
        "a survey of large language models for code generation",
        "self-supervised contrastive learning of visual representations from unlabeled video",
        "on the convergence of stochastic gradient descent with momentum in nonconvex settings",
    ],
    "names, filters": [
        "Yoshua Bengio",
        "author:hinton",
        "transformer cat:cs.CL",
        '"neural network" -convolutional',
        "quantum year:2024",
    ],
}


def run_query(backend: PgKeywordBackend, raw: str) -> int:
    q = parse_query(raw)
    n = len(backend.search(q, POOL).hits)
    if q.text and not q.has_filters:
        backend.title_matches(q.raw)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, help="SQLAlchemy URL of a bench/load.py catalog")
    ap.add_argument("--runs", type=int, default=3, help="runs per query (fastest is reported)")
    ap.add_argument("--sampled", type=int, default=100, help="queries drawn like load.py's")
    ap.add_argument("--explain", help="print EXPLAIN ANALYZE of every statement of this query")
    ap.add_argument("--similar", type=int, help="N random papers' similar papers, twice")
    ap.add_argument("--hybrid", type=int, help="N of load.py's queries through search()")
    ap.add_argument(
        "--statements", action="store_true", help="with --hybrid: wall time per SQL statement"
    )
    args = ap.parse_args()
    engine = db.make_engine(args.db)
    if args.explain:
        explain(engine, args.explain)
        return
    if args.similar:
        similar_cost(engine, args.db, args.similar)
        return
    if args.hybrid:
        hybrid_cost(engine, args.db, args.hybrid, args.statements)
        return
    groups = {**GROUPS, "load.py mix": make_queries(args.sampled, seed=11)}
    print(
        f"keyword search on PostgreSQL, pool {POOL}, fastest of {args.runs} runs; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'group':16s} {'queries':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} "
        f"{'db CPU ms':>9s}"
    )
    worst: list[tuple[float, str]] = []
    with engine.connect() as conn:
        backend_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        proc = psutil.Process(backend_pid)
        conn.rollback()
        backend = PgKeywordBackend(conn)
        for group, queries in groups.items():
            times = []
            cpu0 = sum(proc.cpu_times()[:2])
            for raw in queries:
                best = float("inf")
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    run_query(backend, raw)
                    best = min(best, time.perf_counter() - t0)
                    conn.rollback()
                times.append(best * 1000)
                worst.append((best * 1000, raw))
            cpu = (sum(proc.cpu_times()[:2]) - cpu0) * 1000 / (len(queries) * args.runs)
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(
                f"{group:16s} {len(times):7d} {statistics.median(times):8.1f} {p99:8.1f} "
                f"{times[-1]:8.1f} {cpu:9.1f}",
                flush=True,
            )
    print("slowest:", "; ".join(f"{raw!r} {ms:.0f} ms" for ms, raw in sorted(worst)[-5:]))
    engine.dispose()


def hybrid_cost(engine: Any, url: str, n: int, statements: bool = False) -> None:
    """CPU per search() as the results page asks it (20 hits; query embedding, full-text
    search, pgvector, fusion, snippets) over load.py's queries, one at a time in one
    transaction: this process's CPU (all threads) and its database backend's. `statements`:
    also the wall time of each kind of SQL statement per search (statements that run while
    the query is embedded on the other thread include some of that wait)."""
    from sqlalchemy import event

    from paperfeed.config import Settings
    from paperfeed.search import search

    settings = Settings(database_url=url)
    queries = make_queries(200, seed=5)  # bench/web_cpu.py's: what load.py's users type
    queries = (queries * (n // len(queries) + 1))[:n]
    spent: dict[str, list[float]] = {}  # statement's first words -> [seconds, count]
    started: dict[int, float] = {}
    if statements:

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            started[id(cursor)] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            entry = spent.setdefault(" ".join(statement.split())[:90], [0.0, 0])
            entry[0] += time.perf_counter() - started.pop(id(cursor))
            entry[1] += 1

    with db.read(engine) as conn:
        backend = psutil.Process(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        for q in queries[:20]:  # warm-up: model, plans, caches
            search(conn, settings, q, limit=20)
        spent.clear()
        web0, db0, t0 = time.process_time(), sum(backend.cpu_times()[:2]), time.perf_counter()
        for q in queries:
            search(conn, settings, q, limit=20)
        web, dbc = time.process_time() - web0, sum(backend.cpu_times()[:2]) - db0
        wall = time.perf_counter() - t0
    print(
        f"hybrid search(), {n} queries one at a time; load {os.getloadavg()[0]:.1f}: "
        f"web CPU {web / n * 1000:.1f} ms, database CPU {dbc / n * 1000:.1f} ms, "
        f"wall {wall / n * 1000:.1f} ms per query"
    )
    for sql, (seconds, count) in sorted(spent.items(), key=lambda kv: -kv[1][0])[:10]:
        print(f"  {seconds / n * 1000:6.2f} ms per search, {count:4d} statements: {sql}")


def similar_cost(engine: Any, url: str, n: int) -> None:
    """CPU per paper page's similar papers (search.similar, k as the page asks), one request
    (transaction) at a time: first computed by pgvector and stored in similar_papers, then
    read back from it."""
    from sqlalchemy import func, select

    from paperfeed.config import Settings
    from paperfeed.models import Paper
    from paperfeed.search import similar
    from paperfeed.web.pages import SIMILAR_COUNT

    settings = Settings(database_url=url)
    with db.read(engine) as conn:
        ids = list(conn.execute(select(Paper.id).order_by(func.random()).limit(n)).scalars())
    with db.transaction(engine) as conn:
        conn.execute(text("DELETE FROM similar_papers WHERE paper_id = ANY(:i)"), {"i": ids})
        backend = psutil.Process(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    # The pool hands the same connection back for every request (one at a time).
    print(f"similar papers of {n} random papers, k {SIMILAR_COUNT}; load {os.getloadavg()[0]:.1f}")
    for label in ("computed and stored", "read back"):
        web0, db0, t0 = time.process_time(), sum(backend.cpu_times()[:2]), time.perf_counter()
        for pid in ids:
            with db.read(engine) as conn:
                similar(conn, settings, pid, SIMILAR_COUNT)
        web, dbc = time.process_time() - web0, sum(backend.cpu_times()[:2]) - db0
        wall = time.perf_counter() - t0
        print(
            f"  {label:20s} web CPU {web / n * 1000:5.1f} ms  database CPU {dbc / n * 1000:5.1f} "
            f"ms  wall {wall / n * 1000:5.1f} ms"
        )


def explain(engine: object, raw: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) every statement the keyword search of raw sends."""
    from sqlalchemy import event

    plans: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plans.append(statement + "\n" + "\n".join(r[0] for r in cursor.fetchall()))

    event.listen(engine, "before_cursor_execute", before)
    with db.read(engine) as conn:  # type: ignore[arg-type]
        print(run_query(PgKeywordBackend(conn), raw), "hits")
    for plan in plans:
        print("-" * 100)
        print(plan)


if __name__ == "__main__":
    main()
