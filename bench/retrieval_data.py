"""BEIR-layout retrieval sets, IR metrics and a file cache of corpus embeddings (bench only)."""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "retrieval"
OUT = Path(__file__).resolve().parent / "out"  # gitignored: SciFact is CC BY-NC, never shipped


@dataclass
class Dataset:
    name: str
    doc_ids: list[str]
    titles: list[str]
    texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # split's qrels: query id -> {doc id: grade}


def load(name: str, split: str) -> Dataset:
    """Load corpus, the queries that have qrels in `split`, and those qrels."""
    root = DATA / name
    doc_ids, titles, texts = [], [], []
    with (root / "corpus.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            doc_ids.append(str(row["_id"]))
            titles.append(row.get("title") or "")
            texts.append(row.get("text") or "")
    qrels: dict[str, dict[str, int]] = {}
    with (root / "qrels" / f"{split}.tsv").open() as fh:
        next(fh)
        for line in fh:
            qid, did, grade = line.rstrip("\n").split("\t")
            if int(grade) > 0:
                qrels.setdefault(qid, {})[did] = int(grade)
    queries = {}
    with (root / "queries.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            if str(row["_id"]) in qrels:
                queries[str(row["_id"])] = row["text"]
    return Dataset(name, doc_ids, titles, texts, queries, qrels)


def metrics(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, MRR@10 and Recall@100 over the queries in qrels (missing run = zeros)."""
    ndcg = mrr = rec = 0.0
    for qid, rel in qrels.items():
        ranked = run.get(qid, [])
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
        ideal = sorted(rel.values(), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcg += dcg / idcg if idcg else 0.0
        mrr += next((1.0 / (i + 1) for i, d in enumerate(ranked[:10]) if d in rel), 0.0)
        rec += len(set(ranked[:100]) & rel.keys()) / len(rel)
    n = len(qrels)
    return {"nDCG@10": ndcg / n, "MRR@10": mrr / n, "R@100": rec / n}


def doc_embeddings(ds: Dataset, max_tokens: int = 256) -> np.ndarray:
    """Corpus vectors (cached under bench/out/, keyed by dataset, model and truncation)."""
    from paperfeed.search.embedder import get_embedder, paper_text

    emb = get_embedder(max_tokens=max_tokens)
    path = OUT / f"emb-{ds.name}-{emb.model_id.replace('@', '-')}.npy"
    if path.exists():
        return np.load(path)
    texts = [paper_text(t, x) for t, x in zip(ds.titles, ds.texts, strict=True)]
    start = time.perf_counter()
    vecs = emb.embed(texts, bucketed=True)
    secs = time.perf_counter() - start
    print(
        f"  embedded {len(texts)} {ds.name} docs @{max_tokens} in {secs:.0f}s "
        f"({len(texts) / secs:.1f} docs/s)"
    )
    OUT.mkdir(exist_ok=True)
    np.save(path, vecs)
    return vecs


def sentence_embeddings(ds: Dataset, max_tokens: int = 256) -> list[bytes]:
    """Each document's sentence vectors as stored in embeddings.sentences (packed), cached
    under bench/out/ (as float16) like the paper vectors."""
    from paperfeed.search.embedder import get_embedder, pack_sentences, sentences

    emb = get_embedder(max_tokens=max_tokens)
    path = OUT / f"sent-{ds.name}-{emb.model_id.replace('@', '-')}.npz"
    per = [sentences(x) for x in ds.texts]
    if path.exists():
        cached = np.load(path)
        vecs, starts = cached["vectors"], cached["starts"]
    else:
        flat = [s for group in per for s in group]
        start = time.perf_counter()
        vecs = emb.embed(flat).astype(np.float16)
        secs = time.perf_counter() - start
        rate = len(flat) / secs
        print(f"  embedded {len(flat)} {ds.name} sentences in {secs:.0f}s ({rate:.1f}/s)")
        starts = np.concatenate([[0], np.cumsum([len(g) for g in per])])
        OUT.mkdir(exist_ok=True)
        np.savez(path, vectors=vecs, starts=starts)
    if len(starts) != len(per) + 1 or starts[-1] != len(vecs):
        raise SystemExit(f"{path} does not match the corpus: delete it")
    vecs = vecs.astype(np.float32)
    return [pack_sentences(vecs[a:b]) for a, b in itertools.pairwise(starts)]
