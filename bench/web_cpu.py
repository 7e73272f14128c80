"""Web CPU per request (not wall time): front page, paper page, upvote, one request at a time.

Usage:
  python bench/web_cpu.py --db postgresql+psycopg://postgres@127.0.0.1:PORT/pfbench [--requests 300]
  python bench/web_cpu.py --db URL --profile paper [--requests 200]   # cProfile, in-process

Starts a real `paperfeed serve --workers 1` on loopback (as bench/load.py does, same
environment: access log off) over a catalog that bench/load.py --build-only made, sends
--requests requests of each kind one after another over one keep-alive connection, and
prints the CPU seconds the web process (and, on the bench's own PostgreSQL, the database
server's processes) used per request. CPU time, not wall time: the figure holds on a busy
machine. Kinds: front (/papers), paper (/papers/<id>), each anonymous (with a CSRF cookie, as
the load bench's users) and signed in, upvote (POST /api/papers/<id>/upvote, signed in) and
search (/papers?q=, anonymous, bench/load.py's queries).

--profile KIND runs the app in-process through httpx's ASGI transport with every threadpool
hop made inline (so one cProfile sees the whole request) and prints the top functions by
thread CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from load import make_queries, make_sessions, serve, server_env, tree_cpu_s
from paperfeed import db
from paperfeed.models import Paper, table_of

KINDS = ("front", "front-signed", "paper", "paper-signed", "upvote", "search")
QUERIES = make_queries(200, seed=5)  # what bench/load.py's users search for
WARMUP = 20  # requests per kind before measuring (template compile, caches, pool)


def catalog(url: str) -> tuple[list[str], tuple[str, str]]:
    """The catalog's arXiv ids (a sample) and one signed-in (session, csrf) pair."""
    engine = db.make_engine(url)
    with db.read(engine) as conn:
        n = conn.execute(select(func.count()).select_from(table_of(Paper))).scalar_one()
        if n == 0:
            raise SystemExit("empty catalog: run bench/load.py --db URL --build-only first")
        ids = list(
            conn.execute(select(table_of(Paper).c.arxiv_id).order_by(func.random()).limit(5000))
            .scalars()
            .all()
        )
    engine.dispose()
    return ids, make_sessions(url, 1)[0]


def request_for(
    kind: str, rng: random.Random, ids: list[str], session: tuple[str, str]
) -> tuple[str, str, dict[str, str]]:
    token, csrf = session
    signed = {"cookie": f"pf_session={token}; pf_csrf={csrf}"}
    if kind == "front":
        return "GET", "/papers", {"cookie": f"pf_csrf={csrf}"}
    if kind == "front-signed":
        return "GET", "/papers", signed
    if kind == "paper":
        return "GET", f"/papers/{rng.choice(ids)}", {"cookie": f"pf_csrf={csrf}"}
    if kind == "paper-signed":
        return "GET", f"/papers/{rng.choice(ids)}", signed
    if kind == "search":
        return "GET", f"/papers?q={quote(rng.choice(QUERIES))}", {"cookie": f"pf_csrf={csrf}"}
    return "POST", f"/api/papers/{rng.choice(ids[:500])}/upvote", {**signed, "x-csrf-token": csrf}


def pg_server_pid(url: str) -> int | None:
    """The postmaster of a scripts/pg.sh server on this machine (its port in postmaster.pid)."""
    u = make_url(url)
    if u.get_backend_name() != "postgresql" or u.host not in ("127.0.0.1", "localhost"):
        return None
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].endswith("postgres") and str(u.port) in " ".join(cmd):
            return int(p.pid)
    return None


def measure(url: str, n: int, kinds: list[str]) -> None:
    ids, session = catalog(url)
    pg = pg_server_pid(url)
    data_dir = "/tmp/pf-bench-webcpu-data"
    proc, base = serve(url, 1, data_dir)
    print(
        f"web CPU per request, 1 worker, {n} requests per kind, one at a time; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'kind':14s} {'web ms':>8s} {'db ms':>8s} {'wall p50':>9s}")
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for kind in kinds:
                rng = random.Random(1)
                for _ in range(WARMUP):
                    method, path, headers = request_for(kind, rng, ids, session)
                    client.request(method, path, headers=headers).raise_for_status()
                web0, db0 = tree_cpu_s(proc.pid), tree_cpu_s(pg) if pg else 0.0
                walls = []
                for _ in range(n):
                    method, path, headers = request_for(kind, rng, ids, session)
                    t0 = time.perf_counter()
                    r = client.request(method, path, headers=headers)
                    walls.append(time.perf_counter() - t0)
                    r.raise_for_status()
                web = tree_cpu_s(proc.pid) - web0
                dbs = (tree_cpu_s(pg) - db0) if pg else float("nan")
                walls.sort()
                print(
                    f"{kind:14s} {1000 * web / n:8.2f} {1000 * dbs / n:8.2f} "
                    f"{1000 * walls[len(walls) // 2]:9.2f}",
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def profile(url: str, n: int, kind: str, top: int) -> None:
    """cProfile of n in-process requests of one kind (threadpool hops made inline)."""
    import anyio.to_thread

    async def inline(func: Callable[..., Any], *args: Any, **_: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    for key, value in server_env(url, "/tmp/pf-bench-webcpu-data").items():
        os.environ[key] = value
    from paperfeed.app import app_from_env

    ids, session = catalog(url)
    app = app_from_env()

    async def run() -> pstats.Stats:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            rng = random.Random(1)
            for _ in range(WARMUP):
                method, path, headers = request_for(kind, rng, ids, session)
                (await client.request(method, path, headers=headers)).raise_for_status()
            # CPU time of this thread, not wall time: waits on the database are not in it
            # (nor is the query embedding, which runs on its own thread).
            prof = cProfile.Profile(time.thread_time)
            cpu0 = time.process_time()
            prof.enable()
            for _ in range(n):
                method, path, headers = request_for(kind, rng, ids, session)
                (await client.request(method, path, headers=headers)).raise_for_status()
            prof.disable()
            cpu = time.process_time() - cpu0
            print(f"{kind}: {1000 * cpu / n:.2f} ms CPU per request in-process (with profiler)")
            return pstats.Stats(prof, stream=out)

    out = io.StringIO()
    stats = asyncio.run(run())
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, help="SQLAlchemy URL of a bench/load.py catalog")
    ap.add_argument("--requests", type=int, default=300, help="measured requests per kind")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--profile", choices=KINDS, help="cProfile one kind in-process instead")
    ap.add_argument("--top", type=int, default=40, help="functions listed by --profile")
    args = ap.parse_args()
    if args.profile:
        profile(args.db, args.requests, args.profile, args.top)
    else:
        measure(args.db, args.requests, args.kinds.split(","))


if __name__ == "__main__":
    main()
