"""Vector index over the embeddings table: exact numpy when small, faiss IVF-SQ8 at scale.

Files live in `<data_dir>/search/vectors/gen-<N>/`; `CURRENT` names the live generation and is
replaced atomically, so every web worker notices a rebuild with one stat() per query.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperfeed.search.embedder import DIM, SENTENCE_RECORD, best_sentence_cosines

# IVF candidates per wanted hit, re-ranked with exact float16 dot products. At 1M vectors and
# nprobe 64, top-100 recall vs exact is 0.905 with 2, 4 or 8 candidates per hit (the probed
# cells bound it, not the rescoring); 8 cost 4.0 ms, 2 cost 2.7 ms (CPU p50).
RESCORE_FACTOR = 2
MIN_RESCORE = 100  # ... but never fewer candidates than this
# A generation's sentence vectors: embedder.SENTENCE_RECORD rows as stored in the database
# (streamed out of it: ~8 per paper, never all in memory) and each paper row's first sentence.
SENTENCES_FILE = "sentences.i8"
STARTS_FILE = "sentence_starts.npy"


def ivf_lists(n: int) -> int:
    """IVF cell count: ~4*sqrt(N) (faiss guidelines), at least 1 and at most N/39 for training."""
    return max(1, min(int(4 * np.sqrt(n)), n // 39))


class SentenceFile:
    """A generation's sentence vectors, read with pread: a candidate's few rows (~3 KB) per
    query. (Memory-mapped, each read mapped the page cache's whole large folio, up to 2 MB,
    into the process: RSS grew by ~300 MB per 200 candidates at 1M papers.)"""

    def __init__(self, path: Path) -> None:
        self.file = path.open("rb", buffering=0)  # closed with this object

    def read(self, spans: list[tuple[int, int]]) -> bytes:
        """The packed sentences of these [start, stop) row spans, concatenated."""
        fd, width = self.file.fileno(), SENTENCE_RECORD.itemsize
        return b"".join(os.pread(fd, (b - a) * width, a * width) for a, b in spans)


@dataclass
class Candidates:
    """Some papers' stored vectors, read before the query vector exists: search reads the
    keyword hits' while the query is still being embedded, and scores them after."""

    ids: list[int]
    vectors: np.ndarray  # float32, one row per id
    sentences: bytes  # packed sentence vectors of the ids with sentences, in id order
    sentence_ids: list[int]  # those ids
    sentence_counts: np.ndarray  # and how many sentences each has

    def scores(self, query: np.ndarray) -> dict[int, float]:
        """Cosine of the query with each paper's vector."""
        got = np.einsum("ij,j->i", self.vectors, np.asarray(query, dtype=np.float32))
        return dict(zip(self.ids, got.tolist(), strict=True))

    def sentence_scores(self, query: np.ndarray) -> dict[int, float]:
        """Each paper's best sentence cosine (papers with sentence vectors)."""
        if not self.sentence_ids:
            return {}
        best = best_sentence_cosines(self.sentences, self.sentence_counts, query)
        return dict(zip(self.sentence_ids, best.tolist(), strict=True))


@dataclass
class VectorIndex:
    """One loaded generation: paper ids and their vectors (+ an IVF index at scale)."""

    generation: int
    ids: np.ndarray  # int64 paper ids, row order
    vectors: np.ndarray | None  # rows for exact rescoring (memory-mapped; float16 with IVF)
    ivf: object | None = None  # faiss.IndexIVFScalarQuantizer
    nprobe: int = 32
    flat: object | None = None  # faiss.IndexFlatIP: exact search for small catalogs
    threads: int = 1  # OpenMP threads per query: one query per worker; more threads only spin
    # Sentence vectors and, per row, where its sentences start (len(ids) + 1 offsets; a
    # paper without sentences has an empty range).
    sentences: SentenceFile | None = None
    sentence_starts: np.ndarray | None = None
    _order: np.ndarray | None = None  # argsort of ids, built on first scores() call

    def __len__(self) -> int:
        return len(self.ids)

    def _rows(self, paper_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, paper ids) of those of paper_ids in the index, in row order (sequential
        reads of the memory-mapped files)."""
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        order = self._order
        wanted = np.asarray(paper_ids, dtype=np.int64)
        slot = np.minimum(np.searchsorted(self.ids, wanted, sorter=order), len(order) - 1)
        rows = order[slot]
        found = self.ids[rows] == wanted
        rows, wanted = rows[found], wanted[found]
        sort = np.argsort(rows)
        return rows[sort], wanted[sort]

    def read(
        self, paper_ids: list[int], vectors: bool = True, sentences: bool = True
    ) -> Candidates:
        """These papers' stored vectors (those in the index) and/or sentence vectors."""
        empty = np.zeros((0, DIM), dtype=np.float32)
        if self.vectors is None or not paper_ids or not len(self.ids):
            return Candidates([], empty, b"", [], np.zeros(0, dtype=np.int64))
        rows, wanted = self._rows(paper_ids)
        paper = np.asarray(self.vectors[rows], dtype=np.float32) if vectors else empty
        data, with_sentences, counts = b"", [], np.zeros(0, dtype=np.int64)
        if sentences and self.sentences is not None and self.sentence_starts is not None:
            starts, stops = self.sentence_starts[rows], self.sentence_starts[rows + 1]
            has = stops > starts
            data = self.sentences.read(
                list(zip(starts[has].tolist(), stops[has].tolist(), strict=True))
            )
            with_sentences, counts = wanted[has].tolist(), (stops - starts)[has]
        return Candidates(wanted.tolist() if vectors else [], paper, data, with_sentences, counts)

    def scores(self, query: np.ndarray, paper_ids: list[int]) -> dict[int, float]:
        """Exact cosine of the query with these papers' vectors (those in the index), for
        scoring keyword candidates that the semantic top-k did not reach."""
        return self.read(paper_ids, sentences=False).scores(query)

    def sentence_scores(self, query: np.ndarray, paper_ids: list[int]) -> dict[int, float]:
        """The best cosine of the query with any sentence of each paper (papers with
        sentence vectors only)."""
        return self.read(paper_ids, vectors=False).sentence_scores(query)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (paper_id, cosine) for a unit query vector."""
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        k = min(k, n)
        import faiss

        faiss.omp_set_num_threads(self.threads)
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if self.flat is not None:
            dist, labels = self.flat.search(q.reshape(1, -1), k)  # type: ignore[attr-defined]
            keep = labels[0] >= 0
            return list(
                zip(self.ids[labels[0][keep]].tolist(), dist[0][keep].tolist(), strict=True)
            )
        assert self.vectors is not None
        self.ivf.nprobe = self.nprobe  # type: ignore[attr-defined]
        wanted = min(n, max(k * RESCORE_FACTOR, MIN_RESCORE))
        _, labels = self.ivf.search(q.reshape(1, -1), wanted)  # type: ignore[attr-defined]
        cand = np.sort(labels[0][labels[0] >= 0])  # sorted: sequential reads of the mmap
        scores = np.asarray(self.vectors[cand], dtype=np.float32) @ q
        order = np.argsort(-scores)[:k]
        # tolist(): plain ints and floats in one call (a numpy scalar per hit cost ~0.5 ms)
        return list(zip(self.ids[cand[order]].tolist(), scores[order].tolist(), strict=True))


def _current(root: Path) -> int | None:
    try:
        return int((root / "CURRENT").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def write_index(
    root: Path,
    ids: np.ndarray,
    vectors: np.ndarray,
    exact_max: int,
    threads: int = 0,
    sentences: tuple[Path, np.ndarray] | None = None,
) -> int:
    """Persist a new generation (exact or IVF by size) and make it current; returns it.
    `sentences`: a file of packed sentence vectors in row order (moved into the generation)
    and where each row's start (len(ids) + 1 offsets)."""
    import faiss

    root.mkdir(parents=True, exist_ok=True)
    gen = (_current(root) or 0) + 1
    tmp = root / f"gen-{gen}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    np.save(tmp / "ids.npy", ids.astype(np.int64))
    if sentences is not None:
        raw, starts = sentences
        size = int(starts[-1]) * SENTENCE_RECORD.itemsize
        if len(starts) != len(ids) + 1 or raw.stat().st_size != size:
            raise ValueError("sentence vectors do not match the rows")
        shutil.move(raw, tmp / SENTENCES_FILE)
        np.save(tmp / STARTS_FILE, starts.astype(np.int64))
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(ids) <= exact_max:
        np.save(tmp / "vectors.npy", vectors)
    else:
        faiss.omp_set_num_threads(threads or os.cpu_count() or 1)
        nlist = ivf_lists(len(ids))
        quantizer = faiss.IndexFlatIP(DIM)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, DIM, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), nlist * 64), replace=False)]
        ivf.train(sample)
        ivf.add(vectors)
        faiss.write_index(ivf, str(tmp / "ivf.faiss"))
        np.save(tmp / "vectors16.npy", vectors.astype(np.float16))
    final = root / f"gen-{gen}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    pointer = root / "CURRENT.tmp"
    pointer.write_text(str(gen))
    pointer.replace(root / "CURRENT")
    # Keep the previous generation: a worker may be loading it right now.
    for old in root.glob("gen-*"):
        suffix = old.name.removeprefix("gen-")
        if suffix.isdigit() and int(suffix) < gen - 1:
            shutil.rmtree(old, ignore_errors=True)
    return gen


def current_count(root: Path) -> int | None:
    """Vectors in the live generation (None when none was built), without loading it."""
    gen = _current(root)
    if gen is None:
        return None
    return int(np.load(root / f"gen-{gen}" / "ids.npy", mmap_mode="r").shape[0])


def load_index(root: Path, nprobe: int = 32, threads: int = 1) -> VectorIndex | None:
    """Load the current generation, or None when none was built yet."""
    gen = _current(root)
    if gen is None:
        return None
    d = root / f"gen-{gen}"
    import faiss

    ids = np.load(d / "ids.npy")
    # None: an older generation, or no paper has sentences
    sentences: SentenceFile | None = None
    starts: np.ndarray | None = None
    if (d / STARTS_FILE).exists():
        starts = np.load(d / STARTS_FILE)
        if starts[-1] > 0:
            sentences = SentenceFile(d / SENTENCES_FILE)
        else:
            starts = None
    if (d / "ivf.faiss").exists():
        ivf = faiss.read_index(str(d / "ivf.faiss"))
        vecs = np.load(d / "vectors16.npy", mmap_mode="r")
        return VectorIndex(
            gen,
            ids,
            vecs,
            ivf,
            nprobe,
            threads=threads,
            sentences=sentences,
            sentence_starts=starts,
        )
    flat = faiss.IndexFlatIP(DIM)
    vecs = np.load(d / "vectors.npy", mmap_mode="r")
    flat.add(np.ascontiguousarray(vecs))
    return VectorIndex(
        gen, ids, vecs, flat=flat, threads=threads, sentences=sentences, sentence_starts=starts
    )


class VectorCache:
    """Per-process holder that reloads when another process published a new generation."""

    def __init__(self, root: Path, nprobe: int = 32, threads: int = 1) -> None:
        self.root = root
        self.nprobe = nprobe
        self.threads = threads
        self._stamp: tuple[int, int] | None = None
        self._index: VectorIndex | None = None
        self._lock = threading.Lock()

    def get(self) -> VectorIndex | None:
        try:
            st = os.stat(self.root / "CURRENT")
            stamp: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)  # replace() = new inode
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or (self._index is None and stamp is not None):
                self._index = (
                    load_index(self.root, self.nprobe, self.threads) if stamp is not None else None
                )
                self._stamp = stamp
            return self._index
