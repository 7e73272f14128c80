"""Embedding throughput (abstracts/s) of the ONNX MiniLM path, plain vs faster variants.

Usage: python bench/embed_throughput.py [--n 400] [--threads 0]
Texts are real title+abstract pairs from ../shared/data/hf_daily_papers.jsonl. Prints wall-clock
abstracts/s and abstracts per CPU-second (robust when other processes share the cores).
Quality of each truncation on SciFact: bench/search_quality.py --max-tokens N (semantic row).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from paperfeed.search.embedder import Embedder, paper_text

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = [  # (label, max_tokens, batch, length-bucketed)
    ("baseline: batch 8, arrival order, 256 tok", 256, 8, False),
    ("length-bucketed, batch 8, 256 tok", 256, 8, True),
    ("length-bucketed, batch 32, 256 tok", 256, 32, True),
    ("length-bucketed, batch 8, 128 tok", 128, 8, True),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    texts = []
    with (SHARED / "hf_daily_papers.jsonl").open() as fh:
        for line in fh:
            r = json.loads(line)
            texts.append(paper_text(r["title"], r.get("abstract")))
            if len(texts) == args.n:
                break
    print(f"{'variant':45} {'abstracts/s':>11} {'per CPU-s':>9}")
    for label, max_tokens, batch, bucketed in VARIANTS:
        emb = Embedder(max_tokens=max_tokens, threads=args.threads)
        emb.embed(texts[:16], batch_size=batch)  # warm-up
        w0, c0 = time.perf_counter(), time.process_time()
        emb.embed(texts, batch_size=batch, bucketed=bucketed)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        print(f"{label:45} {len(texts) / wall:11.1f} {len(texts) / cpu:9.1f}", flush=True)


if __name__ == "__main__":
    main()
