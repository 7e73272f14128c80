"""Where the search indexes live on disk, and the per-process handles that read them."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from paperfeed.config import Settings
from paperfeed.search.keyword import TantivyBackend
from paperfeed.search.vectors import VectorCache


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
    keyword: TantivyBackend
    vectors: VectorCache
    stamp: tuple[int, int] | None


_HANDLES: dict[Path, Handles] = {}
_LOCK = threading.Lock()


def handles(settings: Settings) -> Handles:
    """This process's readers for settings.data_dir, reloaded when an indexer bumped the stamp."""
    root = search_dir(settings).resolve()
    stamp = _stamp(settings)
    with _LOCK:
        h = _HANDLES.get(root)
        if h is None:
            h = Handles(
                TantivyBackend(root / "keyword"),
                VectorCache(
                    root / "vectors",
                    nprobe=settings.search_ivf_nprobe,
                    threads=settings.search_query_threads,
                ),
                stamp,
            )
            _HANDLES[root] = h
        elif h.stamp != stamp:
            h.keyword.reload()
            h.stamp = stamp
        return h


def forget(settings: Settings) -> None:
    """Drop this process's handles (after the index directory was rebuilt or removed)."""
    with _LOCK:
        _HANDLES.pop(search_dir(settings).resolve(), None)
