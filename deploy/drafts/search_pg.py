# DRAFT, not imported: the PostgreSQL keyword (tsvector) and vector (pgvector HNSW) backends for
# paperfeed.search, written against the search branch (KeywordBackend protocol, VectorCache shape)
# before it reached main. To finish at merge: move to src/paperfeed/search/pg.py, choose it in
# search.store.handles() when the database is PostgreSQL, skip the tantivy sync in indexing and
# call sync_vectors() instead of write_index(). Uses migration 0003_postgres_search.
"""PostgreSQL search backends: full-text search (weighted tsvector + GIN) and pgvector HNSW.

Used instead of the embedded tantivy / numpy-faiss indexes when the catalog lives in PostgreSQL
(`PAPERFEED_SEARCH_BACKEND=auto`, the default): every web process on every machine then reads
the same, always-current indexes, and there are no index files to build, copy or lock. The
columns and indexes come from migration 0003_postgres_search: `papers.search_tsv` is a stored
generated column (so the keyword side never lags the catalog) and `embeddings.vec` is filled
from the stored float32 vectors by `paperfeed index` (sync_vectors).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, text

from paperfeed import db
from paperfeed.search.keyword import KeywordDoc, KeywordResult, _analyzers
from paperfeed.search.query import ParsedQuery, fold, title_key

# ts_rank weights for {D, C, B, A} = {-, abstract, authors, title}: the ratio of the tantivy
# backend's field boosts (title 2.0 : authors 1.5 : abstract 1.0).
RANK_WEIGHTS = "{0.1, 0.5, 0.75, 1.0}"
COUNT_CAP = 1000  # matches counted for paging ("1000+"): counting all of a broad query is slow
CANDIDATES = 2000  # matches ranked per tier (ts_rank costs ~2 µs each, there is no pruning)
TOKEN = re.compile(r"[^\W_]+")  # what may go into to_tsquery text: letters and digits only
MAX_TOKENS = 16
EF_SEARCH_MIN = 40  # pgvector's default candidate list; raised to k so a pool of k comes back
SYNC_BATCH = 2000  # vectors copied into the pgvector column per transaction
TITLE_KEY_SQL = "btrim(regexp_replace(lower(title), '[^[:alnum:]_]+', ' ', 'g'))"


def _word_query(idx: int, params: dict[str, Any], word: str) -> str:
    """A tsquery matching a word stemmed (English: titles, abstracts) or as a name (simple)."""
    params[f"w{idx}"] = word
    return f"(plainto_tsquery('english', :w{idx}) || plainto_tsquery('simple', :w{idx}))"


class PgKeywordBackend:
    """KeywordBackend over papers.search_tsv (see paperfeed.search.keyword.KeywordBackend)."""

    fresh = False  # nothing to (re)build: the column is maintained by PostgreSQL itself

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._en = _analyzers()["pf_en"]  # highlighting only: same stems as the tantivy side

    def analyze(self, value: str) -> list[str]:
        return list(self._en.analyze(value))

    def reload(self) -> None:
        return None

    def _constraints(self, q: ParsedQuery, params: dict[str, Any]) -> list[str]:
        where = ["NOT p.hidden"]
        for i, phrase in enumerate(q.phrases):
            params[f"ph{i}"] = phrase
            where.append(
                f"(p.search_tsv @@ phraseto_tsquery('english', :ph{i}) "
                f"OR p.search_tsv @@ phraseto_tsquery('simple', :ph{i}))"
            )
        for i, excluded in enumerate(q.excludes):
            params[f"ex{i}"] = excluded
            where.append(
                f"NOT (p.search_tsv @@ plainto_tsquery('english', :ex{i}) "
                f"OR p.search_tsv @@ plainto_tsquery('simple', :ex{i}))"
            )
        for i, name in enumerate(q.authors):
            # As typed (accents kept, as stored) or folded (as typed on an ASCII keyboard).
            params[f"au{i}"], params[f"auf{i}"] = name, fold(name)
            where.append(
                f"(p.search_tsv @@ phraseto_tsquery('simple', :au{i}) "
                f"OR p.search_tsv @@ phraseto_tsquery('simple', :auf{i}))"
            )
        for i, cat in enumerate(q.categories):
            params[f"cat{i}"], params[f"catp{i}"] = cat.lower(), cat.lower() + ".%"
            where.append(
                "EXISTS (SELECT 1 FROM paper_categories c WHERE c.paper_id = p.id AND "
                f"(lower(c.category) = :cat{i} OR lower(c.category) LIKE :catp{i}))"
            )
        if q.date_from:
            params["dfrom"] = q.date_from
            where.append("p.published >= :dfrom")
        if q.date_to:
            params["dto"] = q.date_to
            where.append("p.published <= :dto")
        if q.has_code:
            where.append("coalesce(p.code_url, '') <> ''")
        return where

    def _tier(
        self, conn: Any, tsq: str, cond: str, params: dict[str, Any], n: int, skip: set[int]
    ) -> list[tuple[int, float]]:
        """Up to n papers matching tsq (+ constraints), best ts_rank first, among CANDIDATES."""
        rows = conn.execute(
            text(
                f"WITH qq AS (SELECT {tsq} AS tsq) "
                f"SELECT c.id, ts_rank('{RANK_WEIGHTS}', c.search_tsv, (SELECT tsq FROM qq)) AS s "
                f"FROM (SELECT p.id, p.search_tsv FROM papers p "
                f"WHERE p.search_tsv @@ (SELECT tsq FROM qq) AND {cond} LIMIT :cand) c "
                "ORDER BY s DESC, c.id LIMIT :n"
            ),
            {**params, "cand": CANDIDATES, "n": n + len(skip)},
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows if int(r[0]) not in skip][:n]

    def search(self, q: ParsedQuery, limit: int) -> KeywordResult:
        """Tiers: all words in the title, then all words anywhere, then any word.

        PostgreSQL ranks every candidate it is given (no top-k pruning like BM25 engines), so
        each tier ranks at most CANDIDATES matches; the tiers put the likely best ones first.
        """
        matched: set[str] = set()
        for word in [*q.terms, *q.phrases]:
            matched.update(self.analyze(word))
        params: dict[str, Any] = {"cap": COUNT_CAP}
        cond = " AND ".join(self._constraints(q, params))
        words = [*q.terms, *q.phrases]
        with db.read(self.engine) as conn:
            if not words:
                if not q.has_filters and not q.excludes:
                    return KeywordResult([], 0, matched)
                # Filters only: newest first (relevance means nothing without words).
                rows = conn.execute(
                    text(
                        f"SELECT p.id FROM papers p WHERE {cond} "
                        "ORDER BY p.published DESC NULLS LAST, p.id DESC LIMIT :limit"
                    ),
                    {**params, "limit": limit},
                ).all()
                total = conn.execute(
                    text(f"SELECT count(*) FROM (SELECT 1 FROM papers p WHERE {cond} LIMIT :cap) m"),
                    params,
                ).scalar_one()
                return KeywordResult([(int(r[0]), 0.0) for r in rows], int(total), matched)
            any_word = " || ".join(_word_query(i, params, w) for i, w in enumerate(words))
            params["all"] = " ".join(words)
            tokens = [t for w in words for t in TOKEN.findall(w)][:MAX_TOKENS]
            tiers = []
            if tokens:
                params["title_all"] = " & ".join(f"{t}:A" for t in tokens)
                tiers.append("to_tsquery('english', :title_all)")
            tiers += ["plainto_tsquery('english', :all)", f"({any_word})"]
            hits: list[tuple[int, float]] = []
            seen: set[int] = set()
            for bonus, tsq in zip((2.0, 1.0, 0.0)[-len(tiers) :], tiers, strict=True):
                if len(hits) >= limit:
                    break
                got = self._tier(conn, tsq, cond, params, limit - len(hits), seen)
                hits += [(pid, bonus + score) for pid, score in got]
                seen.update(pid for pid, _ in got)
            total = conn.execute(
                text(
                    f"SELECT count(*) FROM (SELECT 1 FROM papers p "
                    f"WHERE p.search_tsv @@ ({any_word}) AND {cond} LIMIT :cap) m"
                ),
                params,
            ).scalar_one()
        return KeywordResult(hits, max(int(total), len(hits)), matched)

    def filter_ids(self, q: ParsedQuery, paper_ids: Sequence[int]) -> set[int]:
        params: dict[str, Any] = {"ids": [int(i) for i in paper_ids]}
        where = self._constraints(q, params)
        if len(where) == 1 or not paper_ids:  # only "not hidden": nothing to filter
            return set(paper_ids)
        cond = " AND ".join(where)
        stmt = text(f"SELECT p.id FROM papers p WHERE p.id IN :ids AND {cond}").bindparams(
            bindparam("ids", expanding=True)
        )
        with db.read(self.engine) as conn:
            return {int(r[0]) for r in conn.execute(stmt, params)}

    def title_matches(self, value: str) -> list[int]:
        key = title_key(value)
        if not key:
            return []
        with db.read(self.engine) as conn:
            return [
                int(r[0])
                for r in conn.execute(
                    text(f"SELECT id FROM papers WHERE {TITLE_KEY_SQL} = :k AND NOT hidden LIMIT 5"),
                    {"k": key},
                )
            ]

    def count(self) -> int:
        with db.read(self.engine) as conn:
            return int(conn.execute(text("SELECT count(*) FROM papers WHERE NOT hidden")).scalar_one())

    # The column is generated: writes are PostgreSQL's job.
    def upsert(self, docs: Iterable[KeywordDoc]) -> int:
        return len(list(docs))

    def delete(self, paper_ids: Iterable[int]) -> None:
        return None

    def clear(self) -> None:
        return None


class PgVectorIndex:
    """Nearest neighbours by inner product over embeddings.vec (HNSW)."""

    ivf = None

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __len__(self) -> int:
        with db.read(self.engine) as conn:
            return int(
                conn.execute(text("SELECT count(*) FROM embeddings WHERE vec IS NOT NULL")).scalar_one()
            )

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k <= 0:
            return []
        vec = "[" + ",".join(f"{x:.7g}" for x in np.asarray(query, dtype=np.float32).ravel()) + "]"
        with db.read(self.engine) as conn:
            conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH_MIN, int(k))}"))
            rows = conn.execute(
                text(
                    "SELECT paper_id, -(vec <#> CAST(:q AS vector)) FROM embeddings "
                    "WHERE vec IS NOT NULL ORDER BY vec <#> CAST(:q AS vector) LIMIT :k"
                ),
                {"q": vec, "k": int(k)},
            ).all()
        return [(int(r[0]), float(r[1])) for r in rows]


class PgVectorCache:
    """Same shape as search.vectors.VectorCache: get() returns the (always current) index."""

    def __init__(self, engine: Engine) -> None:
        self._index = PgVectorIndex(engine)

    def get(self) -> PgVectorIndex:
        return self._index


def has_pgvector(engine: Engine) -> bool:
    """Whether migration 0002 could create embeddings.vec (pgvector installed on the server)."""
    with db.read(engine) as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT 1 FROM information_schema.columns "
                    "WHERE table_name = 'embeddings' AND column_name = 'vec'"
                )
            ).scalar()
        )


def sync_vectors(engine: Engine, model_id: str) -> int:
    """Copy stored float32 vectors of this model into the pgvector column where it is empty."""
    done = 0
    while True:
        with db.transaction(engine) as conn:
            rows = conn.execute(
                text(
                    "SELECT paper_id, vector FROM embeddings WHERE vec IS NULL AND model = :m "
                    "ORDER BY paper_id LIMIT :n"
                ),
                {"m": model_id, "n": SYNC_BATCH},
            ).all()
            if not rows:
                return done
            conn.execute(
                text("UPDATE embeddings SET vec = CAST(:v AS vector) WHERE paper_id = :p"),
                [
                    {
                        "p": r[0],
                        "v": "["
                        + ",".join(f"{x:.7g}" for x in np.frombuffer(r[1], dtype=np.float32))
                        + "]",
                    }
                    for r in rows
                ],
            )
            done += len(rows)


_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per database URL per process, shared by the search backends."""
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = db.make_engine(url)
        return _ENGINES[url]
