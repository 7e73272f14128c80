"""Retrieval quality of paperfeed search: BM25-only, semantic-only and hybrid, through search().

Usage: python bench/search_quality.py [--tune] [--max-tokens 256] [--db postgresql+psycopg://...]
         [--no-sentences]
  Evaluates SciFact (test split) and CACM with nDCG@10, MRR@10 and Recall@100.
  --tune grid-searches the fusion parameters and the sentence weight on the SciFact *train*
  split only, prints the best and evaluates with them.
  --db measures the PostgreSQL backends (full-text search + pgvector) instead of the embedded
  ones: each set is loaded into that (empty, scratch) database, replacing its catalog.
Corpus embeddings are cached in bench/out/ (gitignored; SciFact is CC BY-NC and never shipped).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).parent))
import retrieval_data as rd
from paperfeed import db
from paperfeed.config import Settings
from paperfeed.models import Embedding, Paper
from paperfeed.search import fusion, index_pending, search
from paperfeed.search.embedder import get_embedder, paper_text
from paperfeed.search.fusion import FusionParams, fuse
from paperfeed.search.indexing import text_hash
from paperfeed.search.query import parse_query
from paperfeed.search.service import hybrid_lists


def build(
    ds: rd.Dataset, max_tokens: int, tmp: Path, url: str = "sqlite://", sentences: bool = True
) -> tuple[Settings, object, dict[int, str]]:
    """A real paperfeed catalog of the corpus, with cached vectors stored as embeddings rows.
    sentences=False: search without the sentence rescoring (PAPERFEED_SEARCH_SENTENCES)."""
    settings = Settings(
        database_url=url,
        data_dir=tmp / ds.name,
        search_max_tokens=max_tokens,
        search_sentences=sentences,
    )
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    if engine.dialect.name == "postgresql":  # a scratch database: the previous set goes
        with db.transaction(engine) as conn:
            conn.execute(text("TRUNCATE papers CASCADE"))
    vectors = rd.doc_embeddings(ds, max_tokens)
    sentence_vectors = rd.sentence_embeddings(ds, max_tokens)
    model_id = get_embedder(max_tokens).model_id
    with db.transaction(engine) as conn:
        conn.execute(
            insert(Paper),
            [
                {
                    "id": i + 1,
                    "arxiv_id": f"{ds.name}-{i}",
                    "title": t,
                    "abstract": x,
                    "authors": [],
                    "categories": [],
                }
                for i, (t, x) in enumerate(zip(ds.titles, ds.texts, strict=True))
            ],
        )
        conn.execute(
            insert(Embedding),
            [
                {
                    "paper_id": i + 1,
                    "model": model_id,
                    "text_hash": text_hash(paper_text(t, x)),
                    "vector": vectors[i].tobytes(),
                    "sentences": sentence_vectors[i],
                }
                for i, (t, x) in enumerate(zip(ds.titles, ds.texts, strict=True))
            ],
        )
    start = time.perf_counter()
    report = index_pending(engine, settings)
    assert report.embedded == report.sentences == 0, "cached vectors should have been reused"
    if engine.dialect.name == "postgresql":  # planner statistics for the new rows
        with db.transaction(engine) as conn:
            conn.execute(text("ANALYZE papers"))
            conn.execute(text("ANALYZE embeddings"))
    print(f"  {ds.name}: indexed {len(ds.doc_ids)} docs in {time.perf_counter() - start:.1f}s")
    return settings, engine, {i + 1: d for i, d in enumerate(ds.doc_ids)}


def run_mode(settings, engine, id_map, queries, mode, fusion=None) -> dict[str, list[str]]:
    out = {}
    with db.read(engine) as conn:
        for qid, text in queries.items():
            page = search(conn, settings, text, limit=100, mode=mode, fusion=fusion)
            out[qid] = [id_map[h.paper_id] for h in page.hits]
    return out


def tune(max_tokens: int, tmp: Path, url: str, sentences: bool) -> FusionParams:
    """The best fusion on SciFact *train*: method, RRF k and keyword weight, and with the
    sentence vectors also their weight (fusion.SENTENCE_WEIGHT, which it then keeps set for
    the test runs). Test queries are never looked at."""
    ds = rd.load("scifact", "train")
    settings, engine, id_map = build(ds, max_tokens, tmp, url, sentences)
    best = (-1.0, FusionParams(), fusion.SENTENCE_WEIGHT)
    for sw in (0.5, 1.0, 1.5, 2.0, 3.0) if sentences else (fusion.SENTENCE_WEIGHT,):
        fusion.SENTENCE_WEIGHT = sw
        # The lists hybrid search fuses: both sides' top 100, every candidate scored by both.
        with db.read(engine) as conn:  # type: ignore[arg-type]
            lists = {
                qid: hybrid_lists(settings, parse_query(q), conn=conn)
                for qid, q in ds.queries.items()
            }
        grid = itertools.chain(
            (
                FusionParams("rrf", k, w)
                for k in (5, 10, 20, 40, 60)
                for w in np.arange(0.2, 0.81, 0.1)
            ),
            (FusionParams("convex", 60, w) for w in np.arange(0.1, 0.91, 0.025)),
        )
        here = (-1.0, FusionParams(), sw)
        for p in grid:
            w = round(float(p.keyword_weight), 3)  # for every query, with sentences or not
            p = FusionParams(p.method, p.rrf_k, w, sentence_keyword_weight=w)
            run = {q: [id_map[i] for i, _ in fuse(kw, sem, p)] for q, (kw, sem) in lists.items()}
            m = rd.metrics(run, ds.qrels)
            if m["nDCG@10"] > here[0]:
                here = (m["nDCG@10"], p, sw)
        print(f"  sentence weight {sw}: best on SciFact train {here[1]} nDCG@10={here[0]:.4f}")
        best = max(best, here, key=lambda b: b[0])
    fusion.SENTENCE_WEIGHT = best[2]
    print(f"  best on SciFact train: {best[1]}, sentence weight {best[2]}  nDCG@10={best[0]:.4f}")
    return best[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--sets", default="scifact,cacm")
    ap.add_argument("--db", default="sqlite://", help="a scratch PostgreSQL database URL")
    ap.add_argument(
        "--no-sentences", action="store_true", help="without the sentence-vector rescoring"
    )
    args = ap.parse_args()
    sentences = not args.no_sentences
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        fusion = tune(args.max_tokens, tmp, args.db, sentences) if args.tune else FusionParams()
        print(f"fusion: {fusion}")
        print(f"{'dataset':10} {'method':9} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8}")
        for name in args.sets.split(","):
            ds = rd.load(name, "test")
            settings, engine, id_map = build(ds, args.max_tokens, tmp, args.db, sentences)
            for mode in ("keyword", "semantic", "hybrid"):
                run = run_mode(settings, engine, id_map, ds.queries, mode, fusion)
                m = rd.metrics(run, ds.qrels)
                label = {"keyword": "BM25", "semantic": "semantic", "hybrid": "hybrid"}[mode]
                print(
                    f"{name:10} {label:9} {m['nDCG@10']:8.4f} {m['MRR@10']:8.4f} {m['R@100']:8.4f}"
                )


if __name__ == "__main__":
    main()
