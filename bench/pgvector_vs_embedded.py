"""Vector search at scale: pgvector HNSW (PostgreSQL) vs the embedded index, side by side.

Usage: python bench/pgvector_vs_embedded.py --db postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
       [--n 1000000] [--real 3000] [--queries 200] [--pools 100] [--ef 40,100,200,400]
       [--skip-embedded | --skip-pgvector] [--nprobe N]

Vectors: --real abstracts from ../shared/data/arxiv_snapshot_sample.jsonl embedded with the
production embedder (all-MiniLM-L6-v2, ONNX), then expanded to --n by mixing two real vectors
plus Gaussian noise and renormalising (a continuous cloud around real directions, not 500
copies of each). Queries: embeddings of other real abstracts, held out of the base set.
Ground truth: exact inner-product top-10 (numpy). Both sides are timed one query at a time;
recall@10 against truth. The pgvector side is paperfeed's own: a migrated database (in a
scratch database `pf_bench_vectors` on the given server), vectors stored as `paperfeed index`
stores them, copied into the HNSW column by search.pg.sync_vectors and queried through
search.pg.PgVectorIndex over a loopback connection (SQL round trip included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, make_url, text

from paperfeed import db
from paperfeed.config import Settings
from paperfeed.search import pg
from paperfeed.search.embedder import DIM, get_embedder, paper_text
from paperfeed.search.vectors import load_index, write_index

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv_snapshot_sample.jsonl"
CACHE = Path("/tmp/pf-bench-real-vectors.npy")
K = 10
BENCH_DB = "pf_bench_vectors"  # created and dropped on the server given by --db
MODEL = "bench-vectors"
MIX = 0.5  # weight of the second real vector in a synthetic one
NOISE = 0.35  # norm of the Gaussian noise added before renormalising


def real_vectors(count: int) -> np.ndarray:
    if CACHE.exists():
        cached = np.load(CACHE)
        if len(cached) >= count:
            return cached[:count]
    texts = []
    with SAMPLE.open() as fh:
        for line in fh:
            rec = json.loads(line)
            texts.append(paper_text(rec["title"], rec["abstract"]))
            if len(texts) == count:
                break
    t0 = time.perf_counter()
    vecs = get_embedder(256, 2).embed(texts)
    print(f"embedded {len(texts)} real abstracts in {time.perf_counter() - t0:.0f} s")
    np.save(CACHE, vecs)
    return vecs


def synthesize(base: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        a = base[rng.integers(0, len(base), m)]
        b = base[rng.integers(0, len(base), m)]
        noise = rng.standard_normal((m, DIM)).astype(np.float32) * (NOISE / np.sqrt(DIM))
        v = a + MIX * b + noise
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def exact_topk(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    truth = np.empty((len(queries), K), dtype=np.int64)
    for i, q in enumerate(queries):
        scores = vectors @ q
        top = np.argpartition(-scores, K)[:K]
        truth[i] = top[np.argsort(-scores[top])]
    return truth


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)])
    )


def pct(times: list[float]) -> tuple[float, float]:
    s = sorted(times)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))]


def timed_top10(
    search: Callable[[np.ndarray, int], list[tuple[int, float]]],
    queries: np.ndarray,
    pool: int,
    first_id: int = 0,
) -> tuple[float, float, list[list[int]]]:
    """(p50 ms, p99 ms, top-10 row numbers per query): k=pool asked of the index, the first
    10 kept, one query at a time after one warm-up query. first_id: the index's id of row 0."""
    search(queries[0], pool)
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        hits = search(q, pool)[:K]
        times.append((time.perf_counter() - t) * 1000)
        found.append([pid - first_id for pid, _ in hits])
    p50, p99 = pct(times)
    return p50, p99, found


def bench_embedded(
    vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, nprobe: int, pools: list[int]
) -> None:
    root = Path(tempfile.mkdtemp(prefix="pf-vec-"))
    t0 = time.perf_counter()
    write_index(root, np.arange(len(vectors), dtype=np.int64), vectors, exact_max=20_000, threads=2)
    build = time.perf_counter() - t0
    index = load_index(root, nprobe=nprobe)
    assert index is not None
    kind = "exact" if index.ivf is None else f"faiss IVF-SQ8 + fp16 rescoring, nprobe {nprobe}"
    print(f"embedded ({kind}): build {build:.0f} s")
    for pool in pools:  # as the pgvector side: k asked of the index, top 10 kept
        p50, p99, found = timed_top10(index.search, queries, pool)
        print(
            f"embedded, k={pool}, top 10: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
            f"recall@10 {recall(found, truth):.3f}"
        )


def bench_pgvector(
    url: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    pools: list[int],
    efs: list[int],
) -> None:
    """The wired backend: a migrated paperfeed database, `paperfeed index`'s sync, PgVectorIndex."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
    bench_url = make_url(url).set(database=BENCH_DB).render_as_string(hide_password=False)
    engine = db.make_engine(bench_url)
    db.upgrade(engine)
    t0 = time.perf_counter()
    with db.transaction(engine) as conn:
        conn.execute(
            text(
                "INSERT INTO papers (id, arxiv_id, version, versions, title, abstract, authors, "
                "categories, source_upvotes, upvotes, source_comments, num_comments, hotness, "
                "hidden, extra, source, created_at, modified_at) "
                "SELECT i, 'b' || i, 1, '[]', 't', '', '[]', '[]', 0, 0, 0, 0, 0, false, '{}', "
                "'bench', now(), now() FROM generate_series(1, :n) i"
            ),
            {"n": len(vectors)},
        )
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor().copy(
            "COPY embeddings (paper_id, model, text_hash, vector, created_at) FROM STDIN"
        ) as copy:
            for i, v in enumerate(vectors):
                copy.write_row((i + 1, MODEL, "h", v.astype(np.float32).tobytes(), "now"))
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    synced = pg.sync_vectors(engine, MODEL)
    sync = time.perf_counter() - t0
    with db.read(engine) as conn:
        size = conn.execute(
            text("SELECT pg_size_pretty(pg_relation_size('ix_embeddings_vec_hnsw'))")
        ).scalar()
    print(
        f"pgvector (paperfeed schema): load {load:.0f} s; `paperfeed index` sync of {synced} "
        f"vectors into the HNSW column (m=16, ef_construction=64) {sync:.0f} s; index {size}"
    )
    for pool, ef_search in [(k, e) for k in pools for e in efs]:
        with db.read(engine) as conn:
            index = pg.PgVectorIndex(conn, ef_search)
            p50, p99, found = timed_top10(index.search, queries, pool, first_id=1)
        ef = min(pg.HNSW_EF_SEARCH_MAX, max(ef_search, pool))
        print(
            f"pgvector HNSW via PgVectorIndex, k={pool} (ef_search {ef}), top 10: "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, recall@10 {recall(found, truth):.3f}"
        )
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", help="PostgreSQL URL (SQLAlchemy or libpq form)")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--real", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--pools", default="100", help="k asked of the index (search() asks 100)")
    ap.add_argument(
        "--ef", default="40,100,200,400", help="PAPERFEED_SEARCH_HNSW_EF_SEARCH values (≥ k used)"
    )
    ap.add_argument("--skip-embedded", action="store_true")
    ap.add_argument("--skip-pgvector", action="store_true")
    ap.add_argument(
        "--nprobe",
        type=int,
        default=Settings().search_ivf_nprobe,
        help="IVF lists probed by the embedded index (default: PAPERFEED_SEARCH_IVF_NPROBE)",
    )
    args = ap.parse_args()
    if not args.skip_pgvector and not args.db:
        ap.error("--db is required unless --skip-pgvector")
    real = real_vectors(args.real + args.queries)
    base, queries = real[: args.real], real[args.real :]
    t0 = time.perf_counter()
    vectors = synthesize(base, args.n)
    truth = exact_topk(vectors, queries)
    print(
        f"{args.n} vectors ({args.real} real + synthetic mixes), {len(queries)} held-out real "
        f"queries, exact truth in {time.perf_counter() - t0:.0f} s; one query at a time"
    )
    if not args.skip_embedded:
        bench_embedded(
            vectors, queries, truth, args.nprobe, [int(k) for k in args.pools.split(",")]
        )
    if args.skip_pgvector:
        return
    url = make_url(args.db).set(drivername="postgresql+psycopg")
    bench_pgvector(
        url.render_as_string(hide_password=False),
        vectors,
        queries,
        truth,
        [int(p) for p in args.pools.split(",")],
        [int(e) for e in args.ef.split(",")],
    )


if __name__ == "__main__":
    main()
