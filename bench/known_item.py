"""Known-item search with a few title words: does the query find its paper? (hybrid and
semantic, with and without the sentence rescoring of PAPERFEED_SEARCH_SENTENCES).

Usage: python bench/known_item.py [--papers 2000] [--queries 400]
A catalog of --papers random papers of ../shared/data/hf_daily_papers.jsonl is indexed (with
sentence vectors: ~4 min for 2,000 on 2 cores); each query is 2 or 3 words drawn from one
paper's title (stop words left out); prints MRR@10 and the share ranked first. Queries of up to
four words are where hybrid search skips the sentence rescoring (search/service.py).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from paperfeed import db
from paperfeed.config import Settings
from paperfeed.models import Paper
from paperfeed.search import index_pending, search, service

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STOP = {"a", "an", "the", "of", "for", "and", "in", "on", "with", "to", "via", "from", "by"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--papers", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=400)
    args = ap.parse_args()
    rng = random.Random(7)
    with (SHARED / "hf_daily_papers.jsonl").open() as fh:
        rows = rng.sample([json.loads(line) for line in fh], args.papers)
    tmp = Path(tempfile.mkdtemp())
    on = Settings(database_url=f"sqlite:///{tmp / 'pf.db'}", data_dir=tmp / "data")
    off = on.model_copy(update={"search_sentences": False})
    engine = db.make_engine(on.database_url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        conn.execute(
            insert(Paper),
            [
                {
                    "id": i + 1,
                    "arxiv_id": f"known-{i}",
                    "title": r["title"],
                    "abstract": r["abstract"],
                    "authors": [],
                    "categories": [],
                }
                for i, r in enumerate(rows)
            ],
        )
    start = time.perf_counter()
    index_pending(engine, on)
    print(f"indexed {args.papers} papers in {time.perf_counter() - start:.0f}s")
    queries = []
    for i, r in enumerate(rows[: args.queries]):
        words = [w for w in re.findall(r"[A-Za-z]{3,}", r["title"]) if w.lower() not in STOP]
        if len(words) >= 3:
            queries.append((i + 1, " ".join(rng.sample(words, rng.choice([2, 3])))))
    # Hybrid's own rule skips the sentences for these short queries; the "with" row forces them.
    rule = service._by_sentences_for
    for label, settings, forced in (("with sentences", on, True), ("without", off, False)):
        service._by_sentences_for = lambda s, q, m, f=forced: f  # type: ignore[assignment]
        for mode in ("hybrid", "semantic"):
            rr = top1 = 0.0
            with db.read(engine) as conn:
                for pid, q in queries:
                    ids = [h.paper_id for h in search(conn, settings, q, limit=10, mode=mode).hits]
                    if pid in ids:
                        rr += 1 / (ids.index(pid) + 1)
                        top1 += ids[0] == pid
            n = len(queries)
            print(f"{label:15} {mode:9} MRR@10 {rr / n:.4f}  first {top1 / n:.3f}  ({n} queries)")
    service._by_sentences_for = rule


if __name__ == "__main__":
    main()
