"""Vector search at scale: pgvector HNSW (PostgreSQL) vs the embedded index, side by side.

Usage: python bench/pgvector_vs_embedded.py --db postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
       [--n 1000000] [--real 3000] [--queries 200] [--ef 40,100]

Vectors: --real abstracts from ../shared/data/arxiv_snapshot_sample.jsonl embedded with the
production embedder (all-MiniLM-L6-v2, ONNX), then expanded to --n by mixing two real vectors
plus Gaussian noise and renormalising (a continuous cloud around real directions, not 500
copies of each). Queries: embeddings of other real abstracts, held out of the base set.
Ground truth: exact inner-product top-10 (numpy). Both sides are timed one query at a time
(pgvector over a loopback connection, including the SQL round trip); recall@10 against truth.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from sqlalchemy import make_url

from paperfeed.search.embedder import DIM, get_embedder, paper_text
from paperfeed.search.vectors import load_index, write_index

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv_snapshot_sample.jsonl"
CACHE = Path("/tmp/pf-bench-real-vectors.npy")
K = 10
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


def bench_embedded(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> None:
    root = Path(tempfile.mkdtemp(prefix="pf-vec-"))
    t0 = time.perf_counter()
    write_index(root, np.arange(len(vectors), dtype=np.int64), vectors, exact_max=20_000, threads=2)
    build = time.perf_counter() - t0
    index = load_index(root, nprobe=32)
    assert index is not None
    index.search(queries[0], K)
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        hits = index.search(q, K)
        times.append((time.perf_counter() - t) * 1000)
        found.append([pid for pid, _ in hits])
    p50, p99 = pct(times)
    kind = "exact numpy" if index.ivf is None else "faiss IVF-SQ8 + fp16 rescoring, nprobe 32"
    print(
        f"embedded ({kind}): build {build:.0f} s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"recall@10 {recall(found, truth):.3f}"
    )


def bench_pgvector(
    dsn: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, efs: list[int]
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("DROP TABLE IF EXISTS bench_vectors")
        conn.execute(f"CREATE TABLE bench_vectors (id bigint PRIMARY KEY, vec vector({DIM}))")
        t0 = time.perf_counter()
        with conn.cursor().copy(
            "COPY bench_vectors (id, vec) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "vector"])
            for i, v in enumerate(vectors):
                copy.write_row((i, v))
        load = time.perf_counter() - t0
        conn.execute("SET maintenance_work_mem = '4GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")  # + the leader: both cores
        t0 = time.perf_counter()
        conn.execute(
            "CREATE INDEX bench_vectors_hnsw ON bench_vectors USING hnsw (vec vector_ip_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        build = time.perf_counter() - t0
        conn.execute("VACUUM ANALYZE bench_vectors")
        size = conn.execute(
            "SELECT pg_size_pretty(pg_relation_size('bench_vectors_hnsw'))"
        ).fetchone()
        print(
            f"pgvector: COPY {load:.0f} s, HNSW build {build:.0f} s "
            f"(m=16, ef_construction=64), index {size[0]}"
        )
        for ef in efs:
            conn.execute(f"SET hnsw.ef_search = {ef}")
            conn.execute(
                "SELECT id FROM bench_vectors ORDER BY vec <#> %s LIMIT 10", (queries[0],)
            ).fetchall()
            found, times = [], []
            for q in queries:
                t = time.perf_counter()
                rows = conn.execute(
                    "SELECT id FROM bench_vectors ORDER BY vec <#> %s LIMIT 10", (q,)
                ).fetchall()
                times.append((time.perf_counter() - t) * 1000)
                found.append([r[0] for r in rows])
            p50, p99 = pct(times)
            print(
                f"pgvector HNSW ef_search={ef}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                f"recall@10 {recall(found, truth):.3f}"
            )
        conn.execute("DROP TABLE bench_vectors")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, help="PostgreSQL URL (SQLAlchemy or libpq form)")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--real", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef", default="40,100")
    ap.add_argument("--skip-embedded", action="store_true")
    args = ap.parse_args()
    url = make_url(args.db).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
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
        bench_embedded(vectors, queries, truth)
    bench_pgvector(dsn, vectors, queries, truth, [int(e) for e in args.ef.split(",")])


if __name__ == "__main__":
    main()
