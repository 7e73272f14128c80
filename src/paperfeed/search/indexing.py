"""Bringing the search indexes up to date with the catalog, incrementally and resumably."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    update,
)

from paperfeed import db
from paperfeed.config import Settings
from paperfeed.models import Embedding, IngestState, Paper
from paperfeed.search import store
from paperfeed.search.embedder import (
    DIM,
    SENTENCE_RECORD,
    Embedder,
    get_embedder,
    pack_sentences,
    paper_text,
    sentences,
)
from paperfeed.search.keyword import BulkWriter, KeywordDoc, TantivyBackend
from paperfeed.search.vectors import current_count, write_index

KEYWORD_BATCH = 1000  # papers per keyword-index commit (and per watermark checkpoint)
# Bulk keyword load (a fresh index, or a backlog this large): one writer, few commits.
BULK_MIN = 20_000  # pending papers from which an existing index is loaded in bulk
BULK_READ = 5_000  # papers per catalog read in bulk mode
BULK_COMMIT = 100_000  # papers per commit + watermark checkpoint in bulk mode (a crash redoes
# at most this many; a commit costs a segment flush, so fewer is faster)
EMBED_COMMIT = 64  # papers per embeddings transaction: a crash loses at most this much work
KEYWORD_STATE = "search:keyword"
EMBED_STATE = "search:embeddings"

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class IndexBusyError(RuntimeError):
    """Another process is indexing right now."""


@dataclass
class IndexReport:
    keyword_updated: int = 0
    keyword_deleted: int = 0
    embedded: int = 0
    unchanged: int = 0
    vectors: int = 0
    vectors_rebuilt: bool = False
    backend: str = store.EMBEDDED
    sentences: int = 0  # papers that only got sentence vectors (computed without them before)
    vectors_synced: int = 0  # PostgreSQL: embeddings copied into the pgvector column
    lexicon_words: int | None = None  # PostgreSQL: words recounted (None: already current)
    similar_stored: int = 0  # PostgreSQL: papers whose similar papers were computed and kept


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextmanager
def _exclusive(settings: Settings, engine: Engine) -> Iterator[None]:
    if store.backend(settings) == store.POSTGRES:
        from paperfeed.search import pg

        try:
            with pg.exclusive(engine):
                yield
        except pg.IndexLockedError as exc:
            raise IndexBusyError(str(exc)) from exc
        return
    path = store.search_dir(settings)
    path.mkdir(parents=True, exist_ok=True)
    with (path / "index.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexBusyError("another `paperfeed index` is running; try again later") from exc
        yield


def _get_state(conn: Connection, key: str) -> dict[str, Any]:
    row = conn.execute(select(IngestState.value).where(IngestState.key == key)).first()
    return dict(row[0]) if row else {}


def _set_state(conn: Connection, key: str, value: dict[str, Any]) -> None:
    conn.execute(delete(IngestState).where(IngestState.key == key))
    conn.execute(insert(IngestState).values(key=key, value=value, updated_at=dt.datetime.now()))


def _after(mark: dict[str, Any]) -> Any:
    """Rows strictly after a (modified_at, id) keyset checkpoint."""
    if not mark:
        return True
    when = dt.datetime.fromisoformat(mark["modified_at"])
    return or_(Paper.modified_at > when, and_(Paper.modified_at == when, Paper.id > mark["id"]))


def _keyword_rows(engine: Engine, mark: dict[str, Any], limit: int) -> list[Any]:
    """The next `limit` papers after the watermark, in (modified_at, id) order."""
    with db.read(engine) as conn:
        return list(
            conn.execute(
                select(
                    Paper.id,
                    Paper.title,
                    Paper.abstract,
                    Paper.authors,
                    Paper.categories,
                    Paper.published,
                    Paper.code_url,
                    Paper.hidden,
                    Paper.modified_at,
                )
                .where(_after(mark))
                .order_by(Paper.modified_at, Paper.id)
                .limit(limit)
            ).all()
        )


def _keyword_doc(r: Any) -> KeywordDoc:
    return KeywordDoc(
        r.id,
        r.title or "",
        r.abstract or "",
        list(r.authors or []),
        list(r.categories or []),
        r.published,
        bool(r.code_url),
    )


def _sync_keyword(
    engine: Engine, settings: Settings, report: IndexReport, progress: Progress | None
) -> None:
    """Bring the keyword index up to the catalog from the watermark: batch by batch with a
    commit each, or, on a fresh index or a backlog of BULK_MIN papers, as one bulk load
    committing every BULK_COMMIT papers. Either way the watermark is saved only after the
    documents before it were committed, so an interrupted run resumes and a rerun replaces."""
    backend = store.embedded(settings).keyword
    with db.read(engine) as conn:
        mark = {} if backend.fresh else _get_state(conn, KEYWORD_STATE)
        total = conn.execute(
            select(func.count()).select_from(Paper).where(_after(mark))
        ).scalar_one()
    if total and (backend.fresh or total >= BULK_MIN):
        _bulk_keyword(engine, settings, backend, mark, total, report, progress)
        return
    done = 0
    while rows := _keyword_rows(engine, mark, KEYWORD_BATCH):
        visible = [r for r in rows if not r.hidden]
        hidden = [r.id for r in rows if r.hidden]
        backend.upsert(_keyword_doc(r) for r in visible)
        if hidden:
            backend.delete(hidden)
        report.keyword_updated += len(visible)
        report.keyword_deleted += len(hidden)
        mark = {"modified_at": rows[-1].modified_at.isoformat(), "id": rows[-1].id}
        with db.transaction(engine) as conn:
            _set_state(conn, KEYWORD_STATE, mark)
        done += len(rows)
        if progress:
            progress("keyword index", done, total)
    backend.fresh = False


def _bulk_keyword(
    engine: Engine,
    settings: Settings,
    backend: TantivyBackend,
    mark: dict[str, Any],
    total: int,
    report: IndexReport,
    progress: Progress | None,
) -> None:
    writer = backend.bulk(settings.search_threads or os.cpu_count() or 1)
    ok = False
    try:
        done = pending = 0
        while rows := _keyword_rows(engine, mark, BULK_READ):
            visible = [r for r in rows if not r.hidden]
            hidden = [r.id for r in rows if r.hidden]
            writer.upsert([_keyword_doc(r) for r in visible])
            writer.delete(hidden)
            report.keyword_updated += len(visible)
            report.keyword_deleted += len(hidden)
            mark = {"modified_at": rows[-1].modified_at.isoformat(), "id": rows[-1].id}
            done += len(rows)
            pending += len(rows)
            if pending >= BULK_COMMIT:
                _checkpoint(engine, writer, mark)
                pending = 0
            if progress:
                progress("keyword index", done, total)
        _checkpoint(engine, writer, mark)
        ok = True
    finally:
        writer.close(ok)


def _checkpoint(engine: Engine, writer: BulkWriter, mark: dict[str, Any]) -> None:
    """Commit the bulk writer, then record how far it got."""
    writer.commit()
    if mark:
        with db.transaction(engine) as conn:
            _set_state(conn, KEYWORD_STATE, mark)


def _keyword_drifted(engine: Engine, settings: Settings) -> bool:
    """Deleted papers (or hides that did not bump modified_at) leave the counts apart."""
    with db.read(engine) as conn:
        visible = conn.execute(
            select(func.count()).select_from(Paper).where(Paper.hidden.is_(False))
        ).scalar_one()
    return store.embedded(settings).keyword.count() != visible


def _embed(
    engine: Engine, settings: Settings, report: IndexReport, progress: Progress | None
) -> None:
    """Embed papers whose text or model changed (paper vector + sentence vectors), and add
    sentence vectors to rows computed without them (an upgrade embeds only the sentences)."""
    embedder = get_embedder(settings.search_max_tokens, settings.search_threads)
    want_sentences = settings.search_sentences
    with db.read(engine) as conn:
        mark = _get_state(conn, EMBED_STATE)
        since = dt.datetime.fromisoformat(mark["modified_at"]) if mark else None
        snapshot = conn.execute(select(func.max(Paper.modified_at))).scalar_one()
        stale = or_(Embedding.paper_id.is_(None), Embedding.model != embedder.model_id)
        if since is not None:
            stale = or_(stale, Paper.modified_at > since)
        if want_sentences:
            stale = or_(stale, Embedding.sentences.is_(None))
        rows = conn.execute(
            select(
                Paper.id,
                Paper.title,
                Paper.abstract,
                Embedding.text_hash,
                Embedding.model,
                Embedding.sentences.is_(None).label("no_sentences"),
            )
            .outerjoin(Embedding, Embedding.paper_id == Paper.id)
            .where(stale)
            .order_by(Paper.id)
        ).all()
    todo: list[tuple[int, str, str, str | None]] = []  # (id, text, digest, abstract)
    sentences_only: list[tuple[int, str | None]] = []  # vector current, sentences missing
    for r in rows:
        text = paper_text(r.title, r.abstract)
        digest = text_hash(text)
        if r.text_hash == digest and r.model == embedder.model_id:
            if want_sentences and r.no_sentences:
                sentences_only.append((r.id, r.abstract))
            else:
                report.unchanged += 1
        else:
            todo.append((r.id, text, digest, r.abstract))
    total = len(todo) + len(sentences_only)
    for start in range(0, len(todo), EMBED_COMMIT):
        chunk = todo[start : start + EMBED_COMMIT]
        vecs = embedder.embed([t for _, t, _, _ in chunk], batch_size=settings.search_embed_batch)
        blobs = (
            _sentence_blobs(embedder, [a for _, _, _, a in chunk], settings)
            if want_sentences
            else [None] * len(chunk)
        )
        with db.transaction(engine) as conn:
            conn.execute(
                delete(Embedding).where(Embedding.paper_id.in_([pid for pid, _, _, _ in chunk]))
            )
            conn.execute(
                insert(Embedding),
                [
                    {
                        "paper_id": pid,
                        "model": embedder.model_id,
                        "text_hash": h,
                        "vector": vec.astype(np.float32).tobytes(),
                        "sentences": blob,
                        "created_at": dt.datetime.now(),
                    }
                    for (pid, _, h, _), vec, blob in zip(chunk, vecs, blobs, strict=True)
                ],
            )
        report.embedded += len(chunk)
        if progress:
            progress("embeddings", report.embedded + report.sentences, total)
    for start in range(0, len(sentences_only), EMBED_COMMIT):
        part = sentences_only[start : start + EMBED_COMMIT]
        blobs = _sentence_blobs(embedder, [a for _, a in part], settings)
        with db.transaction(engine) as conn:
            conn.execute(
                update(Embedding)
                .where(Embedding.paper_id == bindparam("pid"))
                .values(sentences=bindparam("blob")),
                [{"pid": pid, "blob": blob} for (pid, _), blob in zip(part, blobs, strict=True)],
            )
        report.sentences += len(part)
        if progress:
            progress("embeddings", report.embedded + report.sentences, total)
    if snapshot is not None:
        with db.transaction(engine) as conn:
            _set_state(conn, EMBED_STATE, {"modified_at": snapshot.isoformat()})


def sentences_missing(engine: Engine) -> int:
    """Stored embeddings without sentence vectors (computed before migration 0010, or with
    PAPERFEED_SEARCH_SENTENCES off): the next `paperfeed index` adds them."""
    with db.read(engine) as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(Embedding).where(Embedding.sentences.is_(None))
            ).scalar_one()
        )


def _sentence_blobs(
    embedder: Embedder, abstracts: list[str | None], settings: Settings
) -> list[bytes]:
    """Each abstract's sentence vectors, packed (b"": no sentence to embed)."""
    per = [sentences(a) for a in abstracts]
    flat = [s for group in per for s in group]
    vecs = embedder.embed(flat, batch_size=settings.search_embed_batch)
    out, at = [], 0
    for group in per:
        out.append(pack_sentences(vecs[at : at + len(group)]))
        at += len(group)
    return out


def load_vectors(
    conn: Connection, model_id: str, sentences_to: Path | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """All stored vectors of a model as (paper ids, float32 matrix, sentence starts). With
    `sentences_to`, the rows' sentence vectors are appended to that file in row order (one
    pass over the table) and the starts are the rows' offsets into it (len(ids) + 1)."""
    n = conn.execute(
        select(func.count()).select_from(Embedding).where(Embedding.model == model_id)
    ).scalar_one()
    ids = np.zeros(n, dtype=np.int64)
    mat = np.zeros((n, DIM), dtype=np.float32)
    counts = np.zeros(n, dtype=np.int64)
    # NULL (not read) stands in for the sentences when they are not wanted.
    blobs = Embedding.sentences if sentences_to is not None else null().label("sentences")
    result = conn.execution_options(yield_per=10_000).execute(
        select(Embedding.paper_id, Embedding.vector, blobs)
        .where(Embedding.model == model_id)
        .order_by(Embedding.paper_id)
    )
    i = 0
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(sentences_to.open("wb")) if sentences_to else None
        for pid, vector, blob in result:
            if i >= n:
                break
            ids[i] = pid
            mat[i] = np.frombuffer(vector, dtype=np.float32)
            if out is not None and blob:
                out.write(blob)
                counts[i] = len(blob) // SENTENCE_RECORD.itemsize
            i += 1
    if sentences_to is None:
        return ids[:i], mat[:i], None
    starts = np.zeros(i + 1, dtype=np.int64)
    np.cumsum(counts[:i], out=starts[1:])
    return ids[:i], mat[:i], starts


def _sync_vectors(
    engine: Engine, settings: Settings, report: IndexReport, progress: Progress | None
) -> None:
    model_id = get_embedder(settings.search_max_tokens, settings.search_threads).model_id
    root = store.search_dir(settings) / "vectors"
    current = current_count(root)
    with db.read(engine) as conn:
        count = conn.execute(
            select(func.count()).select_from(Embedding).where(Embedding.model == model_id)
        ).scalar_one()
        unchanged = report.embedded == 0 and report.sentences == 0
        if current is not None and unchanged and current == count:
            report.vectors = count
            return
        if progress:
            progress("vector index", 0, count)
        root.mkdir(parents=True, exist_ok=True)
        raw = root / "sentences.tmp" if settings.search_sentences else None
        ids, mat, starts = load_vectors(conn, model_id, raw)
    sentences = (raw, starts) if raw is not None and starts is not None else None
    write_index(root, ids, mat, settings.search_exact_max, settings.search_threads, sentences)
    report.vectors = len(ids)
    report.vectors_rebuilt = True
    if progress:
        progress("vector index", count, count)


def _sync_pgvector(
    engine: Engine, settings: Settings, report: IndexReport, progress: Progress | None
) -> None:
    """PostgreSQL: copy new embeddings into embeddings.vec (its HNSW index follows)."""
    from paperfeed.search import pg

    model_id = get_embedder(settings.search_max_tokens, settings.search_threads).model_id
    report.vectors_synced = pg.sync_vectors(
        engine,
        model_id,
        (lambda done, total: progress("pgvector", done, total)) if progress else None,
    )
    report.vectors = pg.vector_count(engine)
    report.vectors_rebuilt = report.vectors_synced > 0


def _pg_index(
    engine: Engine, settings: Settings, report: IndexReport, progress: Progress | None
) -> None:
    """PostgreSQL: the keyword column is generated; its word counts (IDF), embeddings and
    vectors are the work."""
    from paperfeed.search import pg

    report.backend = store.POSTGRES
    if progress:
        progress("word counts", 0, 1)
    report.lexicon_words = pg.refresh_lexicon(engine)
    if progress:
        progress("word counts", 1, 1)
    if not settings.search_semantic:
        return
    _embed(engine, settings, report, progress)
    with db.read(engine) as conn:
        vectors_in_db = pg.has_pgvector(conn)
    if vectors_in_db:
        _sync_pgvector(engine, settings, report, progress)
        if settings.similar_cache_s > 0:
            report.similar_stored = pg.precompute_similar(
                engine,
                settings.similar_hnsw_ef_search,
                (lambda done, total: progress("similar papers", done, total)) if progress else None,
            )
    else:  # no pgvector on the server: vector files in data_dir, as embedded
        _sync_vectors(engine, settings, report, progress)


def index_pending(
    engine: Engine, settings: Settings, progress: Progress | None = None
) -> IndexReport:
    """Embed new/changed papers and bring the keyword and vector indexes up to date."""
    report = IndexReport()
    if store.backend(settings) == store.POSTGRES:
        with _exclusive(settings, engine):
            _pg_index(engine, settings, report, progress)
        return report
    with _exclusive(settings, engine):
        _sync_keyword(engine, settings, report, progress)
        if _keyword_drifted(engine, settings):
            store.handles(settings).keyword.clear()
            _sync_keyword(engine, settings, report, progress)
        if settings.search_semantic:
            _embed(engine, settings, report, progress)
            _sync_vectors(engine, settings, report, progress)
        changed = report.keyword_updated or report.keyword_deleted or report.vectors_rebuilt
        if changed or not (store.search_dir(settings) / "GENERATION").exists():
            store.bump_generation(settings)
    return report
