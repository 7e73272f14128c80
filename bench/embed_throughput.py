"""Embedding throughput (abstracts/s) of the ONNX MiniLM path, plain vs faster variants, and
the CPU time of one query's embedding on the packaged float32 graph and the integer one.

Usage: python bench/embed_throughput.py [--n 400] [--threads 0] [--only-default]
Texts are real title+abstract pairs from ../shared/data/hf_daily_papers.jsonl. Prints wall-clock
abstracts/s and abstracts per CPU-second (robust when other processes share the cores).
Quality of each truncation on SciFact: bench/search_quality.py --max-tokens N (semantic row).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from paperfeed.search.embedder import Embedder, paper_text, sentences

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = [  # (label, max_tokens, batch, length-bucketed, integer GEMMs)
    ("float32 graph: batch 8, arrival order, 256 tok", 256, 8, False, False),
    ("float32 graph: length-bucketed, batch 8, 256", 256, 8, True, False),
    ("integer graph: batch 8, arrival order, 256 tok", 256, 8, False, True),
    ("integer graph: length-bucketed, batch 8, 256", 256, 8, True, True),
    ("integer graph: one text per run, 256 tok", 256, 1, True, True),
    ("integer graph: length-bucketed, batch 32, 256", 256, 32, True, True),
    ("integer graph: length-bucketed, batch 8, 128", 128, 8, True, True),
]
QUERIES = [  # query embedding: a two-word query and SciFact-like claims
    "graph neural",
    "0-dimensional biomaterials show inductive properties.",
    "A deficiency of vitamin B12 increases blood levels of homocysteine and this is associated "
    "with a higher risk of cardiovascular events in elderly patients.",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--only-default", action="store_true", help="skip the variants table")
    args = ap.parse_args()
    texts, abstracts = [], []
    with (SHARED / "hf_daily_papers.jsonl").open() as fh:
        for line in fh:
            r = json.loads(line)
            texts.append(paper_text(r["title"], r.get("abstract")))
            abstracts.append(r.get("abstract"))
            if len(texts) == args.n:
                break
    print(f"{'variant':48} {'abstracts/s':>11} {'per CPU-s':>9}")
    for label, max_tokens, batch, bucketed, integer in [] if args.only_default else VARIANTS:
        emb = Embedder(max_tokens=max_tokens, threads=args.threads, integer=integer)
        emb.embed(texts[:16], batch_size=batch)  # warm-up
        w0, c0 = time.perf_counter(), time.process_time()
        emb.embed(texts, batch_size=batch, bucketed=bucketed)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        print(f"{label:48} {len(texts) / wall:11.1f} {len(texts) / cpu:9.1f}", flush=True)
    # What `paperfeed index` does per paper by default: the paper vector and one vector per
    # abstract sentence (PAPERFEED_SEARCH_SENTENCES), each text in its own run.
    emb = Embedder(threads=args.threads)
    groups = [sentences(a) for a in abstracts]
    w0, c0 = time.perf_counter(), time.process_time()
    emb.embed(texts)
    emb.embed([s for g in groups for s in g])
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    label = f"default: paper + {sum(map(len, groups)) / len(groups):.1f} sentences, 256"
    print(f"{label:48} {len(texts) / wall:11.1f} {len(texts) / cpu:9.1f}", flush=True)
    print("\nquery embedding, 1 thread: median CPU ms over 50 runs")
    for integer in (False, True):
        emb = Embedder(threads=1, integer=integer)
        row = []
        for q in QUERIES:
            for _ in range(5):
                emb.embed_query(q)
            times = []
            for _ in range(50):
                c0 = time.thread_time()
                emb.embed_query(q)
                times.append((time.thread_time() - c0) * 1000)
            row.append(f"{len(emb.tokenizer.encode(q).ids)} tokens {sorted(times)[25]:.2f} ms")
        print(f"  {'integer' if integer else 'float32'} graph: " + ", ".join(row), flush=True)


if __name__ == "__main__":
    main()
