"""Load test over loopback: N virtual users against `paperfeed serve --workers W`.

Usage:
  python bench/load.py --db postgresql+psycopg://postgres@127.0.0.1:PORT/pfbench --workers 1,2,4
  python bench/load.py --db sqlite:////tmp/pf-bench-load.db --workers 1,2,4

Builds the catalog first if it is empty (--papers, default 300k, the bench/web_latency.py
generator) plus --accounts users with sessions, then for each worker count starts a real server
process on 127.0.0.1, and runs --users virtual users for --warmup + --duration seconds, counting
only the requests sent after the warm-up (the server's first seconds fill its caches and the
page cache; each user also starts after one think time, as in the steady state, rather than all
at the same instant). Each user loops:
pick an action (front page 40%, paper page 30%, search 20%, upvote toggle 10% by default), send
it, wait an exponentially distributed think time (mean --think s; 0 = closed loop at full
speed, which measures capacity). Prints per-endpoint count, throughput, p50/p99 and errors.
`--index` runs `paperfeed index` before the runs, so search is the real hybrid search (on
PostgreSQL: full-text search + pgvector; on SQLite: tantivy + vector files in --data-dir);
without it SQLite search answers from titles only and PostgreSQL from full-text search alone
(the query is still embedded, but there are no vectors to match). `--index --keyword-only`
builds only the keyword index (minutes at 300k) and serves keyword search with no query
embedding: on SQLite that is tantivy BM25, comparable to PostgreSQL without vectors.

The generator (aiohttp) runs on the same 2 cores as the server: its own CPU use (printed, ~1 ms
per request) is part of what the numbers show. The last line of each run is the server's own
view, from its /metrics latency histogram over the same window: the share of requests that
took longer than 50/100/200/300/500 ms inside the app (so without the time spent queued in the
kernel and event loop before it, or the generator's delays).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from paperfeed import db, papers
from paperfeed.models import Paper, table_of
from paperfeed.sources import PaperRecord

PAPERFEED = str(Path(sys.executable).parent / "paperfeed")
MIX = {"front": 0.4, "paper": 0.3, "search": 0.2, "upvote": 0.1}


@dataclass
class Stats:
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: dict[str, str] = field(default_factory=dict)
    server_cpu_s: float = 0.0  # CPU of the web processes while requests were counted
    database_cpu_s: float = 0.0  # ... of the local PostgreSQL server's processes (if any)
    generator_cpu_s: float = 0.0  # ... and of this process
    # The server's own request timings over the measured window (its /metrics histogram):
    # requests timed, and how many took longer than each bucket bound (seconds).
    server_count: float = 0.0
    server_over: dict[float, float] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv_snapshot_sample.jsonl"


def real_texts(limit: int = 40_000) -> list[dict[str, object]]:
    """Titles, abstracts, authors and categories of real papers (the shared arXiv sample)."""
    out: list[dict[str, object]] = []
    with SAMPLE.open() as fh:
        for line in fh:
            r = json.loads(line)
            if not r.get("title") or not r.get("abstract"):
                continue
            out.append(
                {
                    "title": " ".join(r["title"].split()),
                    "abstract": " ".join(r["abstract"].split()),
                    "authors": [a.strip() for a in r["authors"].split(",") if a.strip()][:20],
                    "categories": r["categories"].split(),
                }
            )
            if len(out) == limit:
                break
    return out


def make_queries(count: int = 500, seed: int = 3) -> list[str]:
    """What people type: 2-3 words from a real title (70%), an author (20%), a title (10%)."""
    rng = random.Random(seed)
    texts = real_texts(5000)
    out = []
    for _ in range(count):
        t = rng.choice(texts)
        roll = rng.random()
        if roll < 0.7:
            words = [w.strip(".,:;()") for w in str(t["title"]).split() if len(w) > 3]
            out.append(" ".join(rng.sample(words, min(len(words), rng.choice((2, 2, 3))))))
        elif roll < 0.9 and t["authors"]:
            out.append(rng.choice(t["authors"]))  # type: ignore[arg-type]
        else:
            out.append(str(t["title"]))
    return out


def build(url: str, n: int, seed: int = 7) -> None:
    """n papers with real text (the ~31k real ones repeated), ~20 featured per weekday."""
    rng = random.Random(seed)
    texts = real_texts()
    engine = db.make_engine(url)
    db.upgrade(engine)
    start = dt.date(2024, 1, 1)
    t0 = time.perf_counter()
    for base in range(0, n, 5000):
        batch = []
        for i in range(base, min(n, base + 5000)):
            t = texts[i % len(texts)]
            day = start + dt.timedelta(days=i // 400)  # ~400 new papers a day
            featured = day if day.weekday() < 5 and i % 20 == 0 else None  # ~20 a weekday
            batch.append(
                PaperRecord(
                    arxiv_id=f"{24 + i // 90000:02d}{1 + (i // 7500) % 12:02d}.{i % 90000:05d}",
                    title=str(t["title"]),
                    source="bench",
                    abstract=str(t["abstract"]),
                    authors=list(t["authors"]),  # type: ignore[call-overload]
                    categories=list(t["categories"]),  # type: ignore[call-overload]
                    published=day,
                    featured_date=featured,
                    upvotes=rng.randrange(200) if featured else 0,
                    version=1,
                )
            )
        with db.transaction(engine) as conn:
            papers.upsert_records(conn, batch)
        if base % 50_000 == 0:
            print(f"  {base + len(batch)} papers, {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"built {n} papers in {time.perf_counter() - t0:.0f} s", flush=True)
    engine.dispose()


def prepare(url: str, n: int, accounts: int) -> tuple[list[str], list[tuple[str, str]]]:
    """The catalog's arXiv ids and (session cookie, csrf token) pairs for signed-in users."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.read(engine) as conn:
        have = conn.execute(select(func.count()).select_from(table_of(Paper))).scalar_one()
    if have < n:
        engine.dispose()
        build(url, n)
        engine = db.make_engine(url)
    with db.read(engine) as conn:
        ids = list(conn.execute(select(table_of(Paper).c.arxiv_id)).scalars())
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return ids, make_sessions(url, accounts)


def make_sessions(url: str, accounts: int) -> list[tuple[str, str]]:
    """Accounts with live sessions through the community module (absent: no upvotes)."""
    try:
        from paperfeed import accounts as acc
        from paperfeed import credentials
    except ImportError:
        return []
    from paperfeed.config import Settings

    # Cheap password hashing: sign-up cost is not what this bench measures.
    settings = Settings(
        database_url=url, password_memory_kib=1024, password_time_cost=1, password_parallelism=1
    )
    engine = db.make_engine(url)
    out = []
    with db.transaction(engine) as conn:
        for i in range(accounts):
            name = f"loaduser{i}"
            row = acc.by_name(conn, name)
            if row is None:
                made = acc.sign_up(conn, settings, name, f"{name}@example.org", "pw-0123456789")
                user_id = made.user_id
            else:
                user_id = row.id
            s = credentials.create_session(conn, settings, user_id, remember=False)
            out.append((s.token, s.csrf_token))
    engine.dispose()
    return out


async def user_loop(
    client: aiohttp.ClientSession,
    rng: random.Random,
    ids: list[str],
    session: tuple[str, str] | None,
    measure_from: float,
    stop: float,
    think: float,
    stats: Stats,
    mix: dict[str, float],
    queries: list[str],
) -> None:
    kinds, weights = list(mix), list(mix.values())
    if think:  # start as in the steady state: mid-think, not all 100 users at the same instant
        await asyncio.sleep(rng.expovariate(1 / think))
    while time.perf_counter() < stop:
        kind = rng.choices(kinds, weights)[0]
        if kind == "upvote" and session is None:
            kind = "paper"
        method, path, params, headers = "GET", "/papers", {}, {}
        if kind == "paper":
            path = f"/papers/{rng.choice(ids)}"
        elif kind == "search":
            params = {"q": rng.choice(queries)}
        elif kind == "upvote":
            assert session is not None
            token, csrf = session
            method, path = "POST", f"/api/papers/{rng.choice(ids[:5000])}/upvote"
            headers = {"x-csrf-token": csrf, "cookie": f"pf_session={token}; pf_csrf={csrf}"}
        t0 = time.perf_counter()
        try:
            async with client.request(method, path, params=params, headers=headers) as r:
                body = await r.read()
                ok = r.status < 400
                if not ok:
                    stats.samples.setdefault(kind, f"{r.status} {body[:200]!r}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok = False
            stats.samples.setdefault(kind, repr(exc))
        if t0 >= measure_from:  # requests sent during the warm-up are not counted
            stats.times[kind].append((time.perf_counter() - t0) * 1000)
            if not ok:
                stats.errors[kind] += 1
        if think:
            await asyncio.sleep(rng.expovariate(1 / think))


async def load(
    base: str,
    ids: list[str],
    sessions: list[tuple[str, str]],
    users: int,
    warmup: float,
    duration: float,
    think: float,
    mix: dict[str, float],
    queries: list[str],
    server_pid: int,
    base_db: str,
) -> Stats:
    """aiohttp (C HTTP parser) rather than httpx: the generator shares the two cores with the
    server, and httpx's pure-Python HTTP/1.1 stack cost several times more CPU per request."""
    stats = Stats()
    connector = aiohttp.TCPConnector(limit=users, keepalive_timeout=60)
    async with aiohttp.ClientSession(
        base_url=base,
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=30),
        cookie_jar=aiohttp.DummyCookieJar(),  # each request carries its user's cookies
    ) as client:
        async with client.get("/papers") as r:  # warm
            await r.read()
        measure_from = time.perf_counter() + warmup
        stop = measure_from + duration

        async def cpu_meter() -> None:
            await asyncio.sleep(warmup)
            on_pg = base_db.startswith("postgresql")
            db0 = postgres_cpu_s() if on_pg else 0.0
            cpu0, gen0 = tree_cpu_s(server_pid), time.process_time()
            seen0 = await server_timings(client)
            await asyncio.sleep(duration)
            seen1 = await server_timings(client)
            stats.server_cpu_s = tree_cpu_s(server_pid) - cpu0
            stats.server_count = seen1.get(math.inf, 0.0) - seen0.get(math.inf, 0.0)
            stats.server_over = {
                le: stats.server_count - (n - seen0.get(le, 0.0))
                for le, n in seen1.items()
                if le != math.inf
            }
            stats.database_cpu_s = postgres_cpu_s() - db0 if on_pg else 0.0
            stats.generator_cpu_s = time.process_time() - gen0

        await asyncio.gather(
            cpu_meter(),
            *(
                user_loop(
                    client,
                    random.Random(i),
                    ids,
                    sessions[i % len(sessions)] if sessions else None,
                    measure_from,
                    stop,
                    think,
                    stats,
                    mix,
                    queries,
                )
                for i in range(users)
            ),
        )
    return stats


async def server_timings(client: aiohttp.ClientSession) -> dict[float, float]:
    """The server's request-latency histogram summed over routes: bucket bound (s) -> requests
    at or under it. The middleware's clock starts when the request reaches the app, so the
    difference from the generator's timings is time spent queued before the app (kernel,
    event loop) and the generator's own scheduling delay on the shared cores."""
    async with client.get("/metrics") as r:
        body = await r.text()
    out: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(body):
        if family.name != "paperfeed_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("route") != "/metrics":
                out[float(sample.labels["le"])] += sample.value
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its children (the uvicorn workers)."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def postgres_cpu_s() -> float:
    """CPU seconds used so far by this machine's PostgreSQL server processes (0 if none):
    each connection is a process, and they share the cores with the web tier."""
    total = 0.0
    for p in psutil.process_iter(["name", "cpu_times"]):
        if p.info["name"] == "postgres" and p.info["cpu_times"] is not None:
            total += p.info["cpu_times"].user + p.info["cpu_times"].system
    return total


def report(label: str, stats: Stats, duration: float) -> None:
    server_cpu_s, generator_cpu_s = stats.server_cpu_s, stats.generator_cpu_s
    total = sum(len(t) for t in stats.times.values())
    errors = sum(stats.errors.values())
    print(
        f"\n== {label}: {total / duration:.0f} req/s total, {errors} errors; web processes used "
        f"{server_cpu_s / duration:.2f} cores, {1000 * server_cpu_s / max(total, 1):.1f} ms CPU "
        f"per request; load generator {generator_cpu_s / duration:.2f} cores, "
        f"{1000 * generator_cpu_s / max(total, 1):.1f} ms per request; "
        + (
            f"PostgreSQL {stats.database_cpu_s / duration:.2f} cores, "
            f"{1000 * stats.database_cpu_s / max(total, 1):.1f} ms per request; "
            if stats.database_cpu_s
            else ""
        )
        + f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'endpoint':10s} {'count':>7s} {'req/s':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s}"
    )
    every: list[float] = []
    for kind in MIX:
        t = sorted(stats.times.get(kind, []))
        if not t:
            continue
        every += t
        p99 = t[min(len(t) - 1, int(len(t) * 0.99))]
        print(
            f"{kind:10s} {len(t):7d} {len(t) / duration:7.1f} {statistics.median(t):8.1f} "
            f"{p99:8.1f} {stats.errors.get(kind, 0):7d}"
        )
    every.sort()
    if every:
        p99 = every[min(len(every) - 1, int(len(every) * 0.99))]
        print(
            f"{'all':10s} {len(every):7d} {len(every) / duration:7.1f} "
            f"{statistics.median(every):8.1f} {p99:8.1f} {errors:7d}"
        )
    if stats.server_count:
        over = ", ".join(
            f"{100 * n / stats.server_count:.2f} % over {le * 1000:.0f} ms"
            for le, n in sorted(stats.server_over.items())
            if 0.05 <= le <= 0.5
        )
        print(f"server's own timing ({stats.server_count:.0f} requests): {over}")
    for kind, sample in stats.samples.items():
        print(f"  first {kind} error: {sample}")


EXTRA_ENV: dict[str, str] = {}  # more server settings (--keyword-only)


def server_env(url: str, data_dir: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PAPERFEED_", "PROMETHEUS_"))},
        "PAPERFEED_DATABASE_URL": url,
        "PAPERFEED_DATA_DIR": data_dir,
        "PAPERFEED_SECRET_KEY": secrets.token_urlsafe(32),
        "PAPERFEED_LOG_LEVEL": "warning",  # the access log would cost as much as the bench
        **EXTRA_ENV,
    }


def stand_in_vectors(url: str) -> None:
    """Give every paper without one a stored vector and sentence vectors: real MiniLM vectors
    (the SciFact and CACM corpora cached in bench/out by bench/search_quality.py) replicated
    with Gaussian noise, as bench/search_latency.py does at 1M. Embedding 300k abstracts takes
    hours on two cores (their sentences twice as long); what a load test exercises is the
    vector *search*, whose cost at this scale is that of real vectors. The text hash and model
    id are the current ones, so `paperfeed index` takes them as up to date and only publishes
    them (pgvector + HNSW, or the IVF and sentence files). Semantic results are then
    meaningless; their cost is not."""
    import numpy as np
    from sqlalchemy import bindparam, insert, update

    from paperfeed.models import Embedding
    from paperfeed.search.embedder import get_embedder, pack_sentences, paper_text
    from paperfeed.search.indexing import text_hash

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from search_latency import make_vectors, real_sentence_blocks

    engine = db.make_engine(url)
    model = get_embedder().model_id
    with db.read(engine) as conn:
        todo = conn.execute(
            select(Paper.id, Paper.title, Paper.abstract)
            .outerjoin(Embedding, Embedding.paper_id == Paper.id)
            .where(Embedding.paper_id.is_(None))
            .order_by(Paper.id)
        ).all()
        no_sentences = (
            conn.execute(select(Embedding.paper_id).where(Embedding.sentences.is_(None)))
            .scalars()
            .all()
        )
    if not todo and not no_sentences:
        return
    t0 = time.perf_counter()
    blocks = real_sentence_blocks()
    rng = np.random.default_rng(1)

    def sentence_blobs(count: int) -> list[bytes]:
        """Each paper: the sentences of a random real abstract, with noise (~8 a paper)."""
        out = []
        for i in rng.integers(0, len(blocks), count):
            v = blocks[i] + rng.normal(scale=0.03, size=blocks[i].shape).astype(np.float32)
            out.append(pack_sentences(v / np.linalg.norm(v, axis=1, keepdims=True)))
        return out

    vectors = make_vectors(len(todo), np.random.default_rng(0))
    now = dt.datetime.now()
    for start in range(0, len(todo), 5000):
        part = todo[start : start + 5000]
        with db.transaction(engine) as conn:
            conn.execute(
                insert(Embedding),
                [
                    {
                        "paper_id": r.id,
                        "model": model,
                        "text_hash": text_hash(paper_text(r.title, r.abstract)),
                        "vector": vectors[start + i].tobytes(),
                        "sentences": blob,
                        "created_at": now,
                    }
                    for i, (r, blob) in enumerate(zip(part, sentence_blobs(len(part)), strict=True))
                ],
            )
    for start in range(0, len(no_sentences), 5000):  # vectors stored by an earlier build
        part = no_sentences[start : start + 5000]
        with db.transaction(engine) as conn:
            conn.execute(
                update(Embedding)
                .where(Embedding.paper_id == bindparam("pid"))
                .values(sentences=bindparam("blob")),
                [
                    {"pid": pid, "blob": blob}
                    for pid, blob in zip(part, sentence_blobs(len(part)), strict=True)
                ],
            )
    engine.dispose()
    print(
        f"stand-in vectors: {len(todo)} papers, sentence vectors: "
        f"{len(todo) + len(no_sentences)} ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )


def index(url: str, data_dir: str) -> None:
    """`paperfeed index` (embeddings; on PostgreSQL into pgvector, else tantivy + files)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [PAPERFEED, "index", "--quiet"],
        env=server_env(url, data_dir),
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"{out.stdout.strip()} ({time.perf_counter() - t0:.0f} s)", flush=True)


def serve(url: str, workers: int, data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = server_env(url, data_dir)
    proc = subprocess.Popen(
        [PAPERFEED, "serve", "--workers", str(workers), "--port", str(port)],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        time.sleep(0.2)
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                time.sleep(2.0 * workers)  # let every worker finish starting
                return proc, base
        except httpx.HTTPError:
            pass
    proc.kill()
    raise SystemExit("server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, help="SQLAlchemy URL of the bench database")
    ap.add_argument("--papers", type=int, default=300_000)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds per run")
    ap.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="seconds of full load before the measured window (caches, pools, page cache)",
    )
    ap.add_argument("--think", type=float, default=1.0, help="mean think time, s (0: closed loop)")
    ap.add_argument("--data-dir", default="/tmp/pf-bench-load-data")
    ap.add_argument("--mix", default="", help="e.g. front=0.4,paper=0.3,search=0.2,upvote=0.1")
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server, e.g. PAPERFEED_WEB_THREADS=4 (repeatable)",
    )
    ap.add_argument("--build-only", action="store_true", help="build the catalog and exit")
    ap.add_argument(
        "--index",
        action="store_true",
        help="run `paperfeed index` first (embeds every new paper: ~20 ms each on this machine)",
    )
    ap.add_argument(
        "--stand-in-vectors",
        action="store_true",
        help="with --index: store replicated real vectors instead of embedding every abstract "
        "(see stand_in_vectors), so search runs the whole hybrid path at 300k in minutes",
    )
    ap.add_argument(
        "--keyword-only",
        action="store_true",
        help="PAPERFEED_SEARCH_SEMANTIC=false for index and server: with --index, builds only "
        "the keyword index (minutes, not hours), and search embeds no query",
    )
    args = ap.parse_args()
    mix = dict(MIX)
    if args.mix:
        mix = {k: float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    ids, sessions = prepare(args.db, args.papers, args.accounts)
    if args.keyword_only:
        EXTRA_ENV["PAPERFEED_SEARCH_SEMANTIC"] = "false"
    EXTRA_ENV.update(item.split("=", 1) for item in args.server_env)
    if args.stand_in_vectors:
        stand_in_vectors(args.db)
    if args.index:
        index(args.db, args.data_dir)
    if args.build_only:
        return
    queries = make_queries()
    engine_kind = args.db.split(":", 1)[0]
    print(
        f"{len(ids)} papers, {len(sessions)} signed-in accounts, {args.users} users, "
        f"think {args.think}s, {args.warmup:.0f}s warm-up + {args.duration:.0f}s measured per run, "
        f"database {engine_kind}, "
        f"{os.cpu_count()} CPUs"
    )
    for workers in [int(w) for w in args.workers.split(",")]:
        proc, base = serve(args.db, workers, args.data_dir)
        try:
            stats = asyncio.run(
                load(
                    base,
                    ids,
                    sessions,
                    args.users,
                    args.warmup,
                    args.duration,
                    args.think,
                    mix,
                    queries,
                    proc.pid,
                    args.db,
                )
            )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        report(f"{engine_kind}, {workers} web worker(s)", stats, args.duration)


if __name__ == "__main__":
    main()
