"""Which search backend serves this instance, and the per-process handles that read it.

Embedded (SQLite, or PAPERFEED_SEARCH_BACKEND=embedded): a tantivy index and vector files under
`<data_dir>/search`, reloaded when `paperfeed index` bumps the GENERATION stamp. PostgreSQL
(`auto` on a postgresql:// database, or `postgres`): the database's own full-text search and
pgvector (search/pg.py), read through the caller's connection; no files.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import Connection

from paperfeed.config import Settings
from paperfeed.search.keyword import KeywordBackend, TantivyBackend
from paperfeed.search.vectors import VectorCache

EMBEDDED, POSTGRES = "embedded", "postgres"


class VectorSearcher(Protocol):
    """A loaded vector index: top-k (paper_id, cosine) for a unit query vector."""

    def __len__(self) -> int: ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def scores(self, query: np.ndarray, paper_ids: list[int]) -> dict[int, float]: ...

    def sentence_scores(self, query: np.ndarray, paper_ids: list[int]) -> dict[int, float]: ...


class VectorSource(Protocol):
    """Gives the current vector index, or None when none was built yet."""

    def get(self) -> VectorSearcher | None: ...


def backend(settings: Settings) -> str:
    """EMBEDDED or POSTGRES (Settings already refused `postgres` on a non-PostgreSQL URL)."""
    if settings.search_backend == "auto":
        return POSTGRES if settings.database_url.startswith("postgresql") else EMBEDDED
    return settings.search_backend


def search_dir(settings: Settings) -> Path:
    return settings.data_dir / "search"


def _stamp_path(settings: Settings) -> Path:
    return search_dir(settings) / "GENERATION"


def bump_generation(settings: Settings) -> None:
    """Tell every process that the indexes changed (atomic replace = new inode + mtime)."""
    path = _stamp_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(os.getpid()))
    tmp.replace(path)


def _stamp(settings: Settings) -> tuple[int, int] | None:
    try:
        st = os.stat(_stamp_path(settings))
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


@dataclass
class Handles:
    """What search() reads: a keyword backend and a vector index source."""

    keyword: KeywordBackend
    vectors: VectorSource


@dataclass
class EmbeddedHandles:
    keyword: TantivyBackend
    vectors: VectorCache
    stamp: tuple[int, int] | None


_HANDLES: dict[Path, EmbeddedHandles] = {}
_VECTORS: dict[Path, VectorCache] = {}
_RESOLVED: dict[Path, Path] = {}
_LOCK = threading.Lock()


def _resolved(path: Path) -> Path:
    """path.resolve(), remembered (it walks every component with lstat: ~0.25 ms a call,
    twice per search)."""
    got = _RESOLVED.get(path)
    if got is None:
        got = _RESOLVED[path] = path.resolve()
    return got


def vector_cache(settings: Settings) -> VectorCache:
    """This process's reader of the vector files under settings.data_dir."""
    root = _resolved(search_dir(settings) / "vectors")
    with _LOCK:
        if root not in _VECTORS:
            _VECTORS[root] = VectorCache(
                root, nprobe=settings.search_ivf_nprobe, threads=settings.search_query_threads
            )
        return _VECTORS[root]


def embedded(settings: Settings) -> EmbeddedHandles:
    """This process's tantivy + vector readers, reloaded when an indexer bumped the stamp."""
    vectors = vector_cache(settings)
    root = _resolved(search_dir(settings))
    stamp = _stamp(settings)
    with _LOCK:
        h = _HANDLES.get(root)
        if h is None:
            h = EmbeddedHandles(TantivyBackend(root / "keyword"), vectors, stamp)
            _HANDLES[root] = h
        elif h.stamp != stamp:
            h.keyword.reload()
            h.stamp = stamp
        return h


def handles(settings: Settings, conn: Connection | None = None) -> Handles:
    """The readers search() uses; the PostgreSQL backends read through `conn`."""
    if backend(settings) == POSTGRES:
        from paperfeed.search import pg

        if conn is None:
            raise ValueError("the PostgreSQL search backend reads through a connection")
        # Without pgvector on the server, vectors stay in files (migration 0003 skipped them).
        vectors: VectorSource = (
            pg.PgVectorSource(conn, settings.search_hnsw_ef_search)
            if pg.has_pgvector(conn)
            else vector_cache(settings)
        )
        return Handles(pg.PgKeywordBackend(conn), vectors)
    h = embedded(settings)
    return Handles(h.keyword, h.vectors)


def is_indexed(settings: Settings) -> bool:
    """Whether keyword search can answer: always on PostgreSQL, else after `paperfeed index`."""
    return backend(settings) == POSTGRES or _stamp_path(settings).exists()


def forget(settings: Settings) -> None:
    """Drop this process's handles (after the index directory was rebuilt or removed)."""
    with _LOCK:
        _HANDLES.pop(_resolved(search_dir(settings)), None)
        _VECTORS.pop(_resolved(search_dir(settings) / "vectors"), None)
        _RESOLVED.clear()
