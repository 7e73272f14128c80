"""Hybrid search latency at 10k / 100k / 1M papers, index build time, memory, ANN recall.

Usage: python bench/search_latency.py [--sizes 10000,100000,1000000] [--queries 200]
         [--vectors-from bench/out/vectors-1000000] [--skip-build [--add-sentences]] [--nprobe 64]
         [--no-sentences]
  build: a real SQLite catalog + tantivy index (through index_pending, i.e. the bulk load a
         fresh index gets) + vector index under bench/out/latency-N/
         (texts: real titles/abstracts from ../shared/data, beyond 40k papers synthetic ones made
         of real sentences; vectors: real MiniLM vectors from bench/out caches, replicated with
         Gaussian noise beyond their count, re-normalised)
  serve: a fresh process runs search() (query embedding included) and reports p50/p99 and RSS.
         Half the queries are two title words, half SciFact claims, so the overall p50 sits
         where the two distributions meet; the p50 of each half is printed too.
         The query path is single-threaded, so CPU-time percentiles ("cpu p50") are what the
         latency is on an idle core; wall-clock ones include waiting for a shared, busy CPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SHARED = HERE.parents[1] / "shared" / "data"


def real_texts() -> list[tuple[str, str, list[str], str | None]]:
    """(title, abstract, authors, published) of every real paper in shared/data."""
    rows = []
    with (SHARED / "hf_daily_papers.jsonl").open() as fh:
        for line in fh:
            r = json.loads(line)
            rows.append(
                (r["title"], r.get("abstract") or "", r.get("authors") or [], r.get("published"))
            )
    with (SHARED / "arxiv_snapshot_sample.jsonl").open() as fh:
        for line in fh:
            r = json.loads(line)
            authors = [" ".join(a[::-1][-2:]).strip() for a in r.get("authors_parsed") or []]
            rows.append(
                (
                    " ".join(r["title"].split()),
                    " ".join(r["abstract"].split()),
                    authors,
                    r.get("update_date"),
                )
            )
    return rows


def real_vectors() -> np.ndarray:
    files = sorted(OUT.glob("emb-*-256.npy"))
    if not files:
        sys.exit("no cached vectors: run bench/search_quality.py first")
    return np.concatenate([np.load(f) for f in files])


def make_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    base = real_vectors()
    if n <= len(base):
        return base[:n].copy()
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    out[: len(base)] = base
    for start in range(len(base), n, 100_000):
        stop = min(n, start + 100_000)
        src = base[rng.integers(0, len(base), stop - start)]
        noisy = src + rng.normal(scale=0.06, size=src.shape).astype(np.float32)  # cos ~0.6 to src
        out[start:stop] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out


def build(n: int, root: Path, vectors_from: Path | None = None) -> dict[str, float]:
    """The catalog in SQLite, its keyword index through index_pending (the bulk load a fresh
    index gets), and the vector index (or the files of an earlier --vectors-only N run)."""
    from paperfeed import db
    from paperfeed.config import Settings
    from paperfeed.models import Paper
    from paperfeed.search import index_pending, store
    from paperfeed.search.vectors import write_index
    from paperfeed.sources import parse_date

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    settings = Settings(
        database_url=f"sqlite:///{root / 'pf.db'}", data_dir=root / "data", search_semantic=False
    )
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    rng = random.Random(0)
    real = real_texts()
    sentences = [s for _, a, _, _ in real for s in re.split(r"(?<=\.)\s+", a) if len(s) > 30]
    stats: dict[str, float] = {}

    def paper(i: int) -> tuple[str, str, list[str], str | None]:
        if i < len(real):
            return real[i]
        t, _, au, pub = real[rng.randrange(len(real))]
        return t, " ".join(rng.choices(sentences, k=rng.randint(4, 8))), au, pub

    start = time.perf_counter()
    batch = 20_000
    for lo in range(0, n, batch):
        rows = [paper(i) for i in range(lo, min(n, lo + batch))]
        with db.transaction(engine) as conn:
            conn.execute(
                insert(Paper),
                [
                    {
                        "id": lo + j + 1,
                        "arxiv_id": f"9{(lo + j):09d}",
                        "title": t,
                        "abstract": a,
                        "authors": au[:20],
                        "categories": ["cs.LG"],
                        "published": parse_date(pub),
                    }
                    for j, (t, a, au, pub) in enumerate(rows)
                ],
            )
    stats["catalog s"] = time.perf_counter() - start
    k0, c0 = time.perf_counter(), time.process_time()
    report = index_pending(engine, settings)  # keyword only (search_semantic=False)
    assert report.keyword_updated == n, report
    stats["keyword build s"] = time.perf_counter() - k0
    stats["keyword build cpu s"] = time.process_time() - c0
    vec_root = root / "data" / "search" / "vectors"
    v0 = time.perf_counter()
    if vectors_from is not None:
        # The same vectors (make_vectors(n, rng 0)) indexed by row number: link the files and
        # renumber the rows as paper ids 1..n. The build time is that run's.
        gen = vec_root / "gen-1"
        gen.mkdir(parents=True)
        src = vectors_from / "gen-1"
        assert len(np.load(src / "ids.npy", mmap_mode="r")) == n
        for f in src.iterdir():
            if f.name != "ids.npy":
                (gen / f.name).hardlink_to(f)
        np.save(gen / "ids.npy", np.arange(1, n + 1, dtype=np.int64))
        (vec_root / "CURRENT").write_text("1")
        stats["vector build s"] = float("nan")
    else:
        vecs = make_vectors(n, np.random.default_rng(0))
        v0 = time.perf_counter()
        write_index(vec_root, np.arange(1, n + 1), vecs, settings.search_exact_max)
        stats["vector build s"] = time.perf_counter() - v0
    s0 = time.perf_counter()
    add_sentences(vec_root, n)
    stats["sentence files s"] = time.perf_counter() - s0
    store.bump_generation(settings)
    return stats


def real_sentence_blocks() -> list[np.ndarray]:
    """The sentence vectors of each real SciFact/CACM abstract (bench/out/sent-*.npz)."""
    files = sorted(OUT.glob("sent-*-256.npz"))
    if not files:
        sys.exit("no cached sentence vectors: run bench/search_quality.py first")
    blocks: list[np.ndarray] = []
    for f in files:
        z = np.load(f)
        vecs, starts = z["vectors"].astype(np.float32), z["starts"]
        blocks += [vecs[a:b] for a, b in itertools.pairwise(starts) if b > a]
    return blocks


def add_sentences(vec_root: Path, n: int) -> None:
    """Sentence vectors for the current generation's n papers: each paper gets the sentence
    block of a random real SciFact/CACM abstract (bench/out/sent-*.npz, written by
    bench/search_quality.py), with Gaussian noise, so counts and sizes are real (~8 a paper)."""
    from paperfeed.search.embedder import pack_sentences
    from paperfeed.search.vectors import SENTENCES_FILE, STARTS_FILE

    blocks = real_sentence_blocks()
    gen = vec_root / f"gen-{(vec_root / 'CURRENT').read_text().strip()}"
    rng = np.random.default_rng(1)
    pick = rng.integers(0, len(blocks), n)
    counts = np.array([len(blocks[i]) for i in pick], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    with (gen / SENTENCES_FILE).open("wb") as fh:
        for lo in range(0, n, 50_000):
            chunk = np.concatenate([blocks[i] for i in pick[lo : lo + 50_000]])
            chunk += rng.normal(scale=0.03, size=chunk.shape).astype(np.float32)
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
            fh.write(pack_sentences(chunk))
    np.save(gen / STARTS_FILE, starts)


def queries(count: int) -> list[str]:
    """Half two-word queries from real titles, half real SciFact claims (long queries)."""
    rng = random.Random(1)
    titles = [t for t, _, _, _ in real_texts()]
    stop = {"a", "an", "the", "of", "for", "and", "in", "on", "with", "to", "via", "from", "by"}
    out: list[str] = []
    while len(out) < count // 2:
        words = [
            w for w in re.findall(r"[A-Za-z]{3,}", rng.choice(titles)) if w.lower() not in stop
        ]
        if len(words) >= 2:
            out.append(" ".join(rng.sample(words, 2)))
    claims = [
        json.loads(line)["text"] for line in (SHARED / "retrieval/scifact/queries.jsonl").open()
    ]
    out += rng.sample(claims, count - len(out))
    return out


def _stage_timers(stages: dict[str, float]) -> None:
    """Wrap the functions search() calls so each adds its thread-CPU milliseconds to `stages`
    (per query; the caller clears it). Thread CPU: a stage run on another thread counts there."""
    from sqlalchemy import Connection

    from paperfeed.search import service
    from paperfeed.search.embedder import Embedder
    from paperfeed.search.keyword import TantivyBackend
    from paperfeed.search.snippets import Highlighter
    from paperfeed.search.vectors import Candidates, VectorIndex

    def wrap(owner: object, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def timed(*a: object, **kw: object) -> object:
            c = time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                stages[label] = stages.get(label, 0.0) + (time.thread_time() - c) * 1000

        setattr(owner, name, timed)

    wrap(Embedder, "embed_query", "embed query")
    wrap(VectorIndex, "search", "vector top-k")
    # Reads and arithmetic apart (VectorIndex.scores / sentence_scores are read + Candidates'):
    wrap(VectorIndex, "read", "stored vector reads")
    wrap(Candidates, "scores", "cosine of keyword hits")
    wrap(Candidates, "sentence_scores", "sentence cosines")
    wrap(TantivyBackend, "search", "keyword top-k")
    wrap(TantivyBackend, "scores", "BM25 of semantic hits")
    wrap(TantivyBackend, "filter_ids", "filter/author check")
    wrap(TantivyBackend, "title_matches", "exact title")
    wrap(Highlighter, "snippet", "snippets")
    wrap(Connection, "execute", "SQL (ids, visibility, rows)")
    wrap(service, "fuse", "fusion")
    wrap(service, "parse_query", "parse")
    wrap(service, "hybrid_lists", "hybrid_lists (all in it)")


def serve(
    root: Path, count: int, nprobe: int, stages_out: Path | None = None, sentences: bool = True
) -> None:
    """Run in a fresh process: latency of search() and this process's memory."""
    from paperfeed import db
    from paperfeed.config import Settings
    from paperfeed.search import search, store
    from paperfeed.search.embedder import get_embedder

    settings = Settings(
        database_url=f"sqlite:///{root / 'pf.db'}",
        data_dir=root / "data",
        search_ivf_nprobe=nprobe,
        search_sentences=sentences,
    )
    engine = db.make_engine(settings.database_url)
    qs = queries(count)
    stages: dict[str, float] = {}
    per_query: list[dict[str, float]] = []
    if stages_out is not None:
        _stage_timers(stages)
    t0 = time.perf_counter()
    with db.read(engine) as conn:
        search(conn, settings, "warm up the model and the indexes", limit=20)
    load_s = time.perf_counter() - t0
    lat, cpu = [], []
    load_before = os.getloadavg()[0]
    with db.read(engine) as conn:
        for q in qs[:10]:
            search(conn, settings, q, limit=20)
        for q in qs:
            stages.clear()
            s, c = time.perf_counter(), time.process_time()
            search(conn, settings, q, limit=20)
            lat.append((time.perf_counter() - s) * 1000)
            cpu.append((time.process_time() - c) * 1000)
            per_query.append({**stages, "total cpu": cpu[-1], "total wall": lat[-1]})
    if stages_out is not None:
        _print_stages(qs, per_query, stages_out)
    status = Path("/proc/self/status").read_text().splitlines()
    rss = int(next(x for x in status if x.startswith("VmRSS")).split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # ANN recall@10 against exact search over the same vectors.
    index = store.embedded(settings).vectors.get()
    recall = 1.0
    if index is not None and index.ivf is not None:
        emb = get_embedder()
        qv = np.stack([emb.embed_query(q) for q in qs[:100]])
        exact = np.full((len(qv), 10), -1)
        best = np.full((len(qv), 10), -np.inf)
        for lo in range(0, len(index.ids), 100_000):
            block = np.asarray(index.vectors[lo : lo + 100_000], dtype=np.float32) @ qv.T
            cand = np.concatenate([best, block.T], axis=1)
            ids = np.concatenate(
                [exact, np.arange(lo, lo + block.shape[0])[None].repeat(len(qv), 0)], axis=1
            )
            top = np.argsort(-cand, axis=1)[:, :10]
            best, exact = np.take_along_axis(cand, top, 1), np.take_along_axis(ids, top, 1)
        hits = 0
        for i, v in enumerate(qv):
            got = {pid for pid, _ in index.search(v, 10)}
            hits += len(got & {int(index.ids[j]) for j in exact[i]})
        recall = hits / (10 * len(qv))
    print(
        json.dumps(
            {
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                # the two halves of queries(): two title words, then SciFact claims
                "p50_words_ms": float(np.percentile(lat[: len(lat) // 2], 50)),
                "p50_claims_ms": float(np.percentile(lat[len(lat) // 2 :], 50)),
                "mean_ms": float(np.mean(lat)),
                "cpu_p50_ms": float(np.percentile(cpu, 50)),
                "cpu_p99_ms": float(np.percentile(cpu, 99)),
                "first_query_s": load_s,
                "rss_mb": rss,
                "peak_rss_mb": peak,
                "recall@10": recall,
                "load": f"{load_before:.1f}..{os.getloadavg()[0]:.1f}",  # 1-min, around the timing
            }
        )
    )


def _print_stages(qs: list[str], per_query: list[dict[str, float]], out: Path) -> None:
    """p50/p99 of each stage's CPU ms, for the two-word and the claim queries apart (stderr),
    and every query's numbers as JSON lines in `out`."""
    half = len(qs) // 2
    for r in per_query:
        r["other (rest of search)"] = r["total cpu"] - sum(
            x for k, x in r.items() if not k.startswith(("total", "hybrid_lists"))
        )
        r["hybrid_lists (rest)"] = (
            r.get("hybrid_lists (all in it)", 0.0)
            - sum(
                r.get(k, 0.0)
                for k in (
                    "keyword top-k",
                    "vector top-k",
                    "cosine of keyword hits",
                    "stored vector reads",
                    "sentence cosines",
                )
            )
            - r.get("BM25 of semantic hits", 0.0)
        )
    names = sorted({k for r in per_query for k in r}, key=lambda k: (k.startswith("total"), k))
    with out.open("w") as fh:
        for q, r in zip(qs, per_query, strict=True):
            fh.write(json.dumps({"q": q, **r}) + "\n")
    head = f"{'stage (CPU ms)':24} {'2-word p50':>10} {'p99':>7} {'claims p50':>10} {'p99':>7}"
    print(head, file=sys.stderr)
    for name in names:
        row = [name[:24].ljust(24)]
        for part in (per_query[:half], per_query[half:]):
            v = [r.get(name, 0.0) for r in part]
            row.append(f"{np.percentile(v, 50):>10.2f} {np.percentile(v, 99):>7.2f}")
        print(" ".join(row), file=sys.stderr)


def vectors_only(n: int, count: int, nprobe: int, serve_dir: str | None) -> None:
    """The vector side alone at scale: IVF build, per-query CPU latency, recall@10, memory."""
    from paperfeed.search.embedder import get_embedder
    from paperfeed.search.vectors import load_index, write_index

    root = OUT / f"vectors-{n}"
    if serve_dir is None:
        shutil.rmtree(root, ignore_errors=True)
        vecs = make_vectors(n, np.random.default_rng(0))
        t0 = time.perf_counter()
        write_index(root, np.arange(n), vecs, exact_max=200_000, threads=1)
        build_s = time.perf_counter() - t0
        del vecs
        res = subprocess.run(
            [
                sys.executable,
                __file__,
                "--vectors-only",
                str(n),
                "--serve",
                str(root),
                "--queries",
                str(count),
                "--nprobe",
                str(nprobe),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"vectors={n} build={build_s:.0f}s (1 thread) nprobe={nprobe} "
            f"cpu p50={r['cpu_p50_ms']:.2f}ms p99={r['cpu_p99_ms']:.2f}ms "
            f"wall p50={r['p50_ms']:.2f}ms RSS={r['rss_mb']:.0f}MB recall@10={r['recall@10']:.3f}"
        )
        return
    emb = get_embedder(256, 1)
    qv = np.stack([emb.embed_query(q) for q in queries(count)])
    index = load_index(Path(serve_dir), nprobe=nprobe, threads=1)
    assert index is not None
    lat, cpu = [], []
    for v in qv:
        s, c = time.perf_counter(), time.process_time()
        index.search(v, 100)
        lat.append((time.perf_counter() - s) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    status = Path("/proc/self/status").read_text().splitlines()
    rss = int(next(x for x in status if x.startswith("VmRSS")).split()[1]) / 1024
    exact = np.full((len(qv), 10), -1)
    best = np.full((len(qv), 10), -np.inf)
    assert index.vectors is not None
    for lo in range(0, len(index.ids), 100_000):
        block = (np.asarray(index.vectors[lo : lo + 100_000], dtype=np.float32) @ qv.T).T
        cand = np.concatenate([best, block], axis=1)
        ids = np.concatenate(
            [exact, np.broadcast_to(np.arange(lo, lo + block.shape[1]), block.shape)], 1
        )
        top = np.argsort(-cand, axis=1)[:, :10]
        best, exact = np.take_along_axis(cand, top, 1), np.take_along_axis(ids, top, 1)
    hits = sum(
        len({pid for pid, _ in index.search(v, 10)} & {int(index.ids[j]) for j in exact[i]})
        for i, v in enumerate(qv)
    )
    print(
        json.dumps(
            {
                "p50_ms": float(np.percentile(lat, 50)),
                "cpu_p50_ms": float(np.percentile(cpu, 50)),
                "cpu_p99_ms": float(np.percentile(cpu, 99)),
                "rss_mb": rss,
                "recall@10": hits / (10 * len(qv)),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--nprobe", type=int, default=64, help="IVF cells probed (64 is the default setting)"
    )
    ap.add_argument(
        "--vectors-from", type=Path, help="reuse a --vectors-only N run's files (same vectors)"
    )
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument(
        "--skip-build",
        action="store_true",
        help="time the queries against the files a previous run built under bench/out/latency-N",
    )
    ap.add_argument(
        "--stages",
        type=Path,
        help="also time each stage of search() (CPU ms p50/p99, to stderr; per query to this file)",
    )
    ap.add_argument("--vectors-only", type=int, help="N: only the vector index, at N vectors")
    ap.add_argument(
        "--add-sentences",
        action="store_true",
        help="with --skip-build: first give the built generation its sentence vectors",
    )
    ap.add_argument(
        "--no-sentences", action="store_true", help="search without the sentence rescoring"
    )
    args = ap.parse_args()
    if args.vectors_only:
        vectors_only(args.vectors_only, args.queries, args.nprobe, args.serve)
        return
    if args.serve:
        serve(Path(args.serve), args.queries, args.nprobe, args.stages, not args.no_sentences)
        return
    print(
        f"{'papers':>9} {'catalog s':>9} {'kw build s':>10} {'kw cpu s':>8} {'vec build s':>11} "
        f"{'p50 ms':>7} {'p99 ms':>7} "
        f"{'cpu p50':>7} {'cpu p99':>7} {'RSS MB':>7} {'peak MB':>8} {'recall@10':>9}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        root = OUT / f"latency-{n}"
        nan = float("nan")
        stats = {"catalog s": nan, "keyword build s": nan, "keyword build cpu s": nan}
        stats["vector build s"] = nan
        if not args.skip_build:
            stats = build(n, root, args.vectors_from)
        elif args.add_sentences:
            add_sentences(root / "data" / "search" / "vectors", n)
        res = subprocess.run(
            [
                sys.executable,
                __file__,
                "--serve",
                str(root),
                "--queries",
                str(args.queries),
                "--nprobe",
                str(args.nprobe),
                *(["--stages", str(args.stages)] if args.stages else []),
                *(["--no-sentences"] if args.no_sentences else []),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        sys.stderr.write(res.stderr)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"{n:>9} {stats['catalog s']:>9.1f} {stats['keyword build s']:>10.1f} "
            f"{stats['keyword build cpu s']:>8.1f} {stats['vector build s']:>11.1f} "
            f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
            f"{r['cpu_p50_ms']:>7.1f} {r['cpu_p99_ms']:>7.1f} "
            f"{r['rss_mb']:>7.0f} {r['peak_rss_mb']:>8.0f} "
            f"{r['recall@10']:>9.3f}  load {r['load']}; p50 two words "
            f"{r['p50_words_ms']:.1f}, claims {r['p50_claims_ms']:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
