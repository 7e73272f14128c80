"""PostgreSQL search backends: full-text search (weighted tsvector + GIN) and pgvector HNSW.

Used instead of the embedded tantivy / numpy-faiss indexes when the catalog lives in PostgreSQL
(`PAPERFEED_SEARCH_BACKEND=auto`, the default): every web process on every machine then reads
the same, always-current indexes, and there are no index files to build, copy or lock. The
columns and indexes come from migrations 0003_postgres_search and 0005_search_fold:
`papers.search_tsv` is a stored generated column (so the keyword side never lags the catalog)
and `embeddings.vec` is filled from the stored float32 vectors by `paperfeed index`
(sync_vectors). The backends read through the caller's connection: the request's transaction
(and snapshot) is the search's too.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, Engine, text

from paperfeed import db
from paperfeed.search.embedder import SENTENCE_RECORD, best_sentence_cosines
from paperfeed.search.keyword import KeywordDoc, KeywordResult, english_analyzer
from paperfeed.search.query import ParsedQuery, fold, fold_table, title_key

# Keyword ranking (PgKeywordBackend): BM25's inverse document frequency over binary matches.
# A paper scores, for each query word it has, the word's IDF, plus TITLE_BONUS times that again
# when the word is in its title. Document frequencies come from search_lexicon (migration
# 0008, refreshed by `paperfeed index`); words it lacks are counted live, up to LIVE_DF_CAP.
# bench/search_quality.py --db measures it: SciFact keyword nDCG@10 0.453 with ts_rank, 0.666 now.
TITLE_BONUS = 0.5  # not tuned (1.0 was checked once: SciFact keyword 0.650 vs 0.666)
CANDIDATES = 300  # papers from each candidate source (GIN gives any of them, in no order)
RARE_BUDGET = 1000  # summed document frequency of the rarest words whose papers all compete
LIVE_DF_CAP = 10_000  # a word missing from search_lexicon is counted live up to this
# Papers in all, for IDF: the planner's estimate (exact enough, and free; -1 before ANALYZE).
PAPERS_ESTIMATE = (
    "CAST((SELECT reltuples FROM pg_class WHERE oid = CAST('papers' AS regclass)) AS bigint)"
)
TOKEN = re.compile(r"[^\W_]+")  # what may go into to_tsquery text: letters and digits only
MAX_TOKENS = 16  # words in the every-word-in-the-title source (the parser caps clauses at 32)
EF_SEARCH_DEFAULT = 40  # pgvector's own default candidate list (PAPERFEED_SEARCH_HNSW_EF_SEARCH)
HNSW_EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
FUZZY_MIN_CHARS = 5  # as the tantivy side: shorter words have too many neighbours
FUZZY_MAX_CHARS = 40  # longer "words" are noise (the tantivy analyzers drop them too)
FUZZY_ALPHABET = "abcdefghijklmnopqrstuvwxyz"  # one-edit variants of plain ASCII words only
SYNC_BATCH = 2000  # vectors copied into the pgvector column per transaction
BULK_REBUILD_MIN = 50_000  # pending vectors from which the HNSW index is rebuilt, not grown
# Migration 0003's HNSW index (pgvector defaults: m links per node, ef_construction candidates).
HNSW_INDEX = "ix_embeddings_vec_hnsw"
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# Build memory for that index: the graph of 1M 384-d vectors needs ~2 GB to build in memory;
# with less PostgreSQL finishes on disk, slower. Per session, the server's own setting is kept.
HNSW_BUILD_MEMORY = "1GB"
LOCK_NAME = "paperfeed:search-index"  # session advisory lock: one `paperfeed index` at a time
_FROM, _TO = fold_table()
# search.query.title_key in SQL; the same expression as index ix_papers_title_key (0005).
TITLE_KEY_SQL = (
    f"btrim(regexp_replace(lower(translate(title, '{_FROM}', '{_TO}')), "
    "'[^[:alnum:]_]+', ' ', 'g'))"
)


@dataclass(frozen=True)
class _Word:
    """One query word (or phrase) as ranked: its tsquery SQL and inverse document frequency."""

    tsq: str
    df: int
    idf: float


@dataclass(frozen=True)
class _Ranking:
    """SQL for ranking one query's words over papers (see PgKeywordBackend)."""

    words: list[_Word]  # rarest first
    params: dict[str, Any]  # the bind parameters the SQL below uses

    def score(self, every_word: bool) -> str:
        """SQL: a paper's score over c.ttl (its title's words), c.r (rank_tsv: title and
        authors, in the row) and, only for a word that neither has, c.tsv (search_tsv); with
        every_word (the candidate source guarantees that search_tsv has every word), not even
        then.

        The same score as testing the whole search_tsv (c.tsv) for each word: rank_tsv's
        lexemes are search_tsv's title (A) and author (B) lexemes exactly (migration 0007),
        so reading the big vector is needed only when they lack a word.
        """
        terms = []
        for w in self.words:
            full, title = f"float8 '{w.idf:.6f}'", f"float8 '{w.idf * (1 + TITLE_BONUS):.6f}'"
            rest = f"WHEN c.tsv @@ {w.tsq} THEN {full} ELSE float8 '0'"
            if every_word:
                rest = f"ELSE {full}"
            terms.append(
                f"CASE WHEN c.ttl @@ {w.tsq} THEN {title} WHEN c.r @@ {w.tsq} THEN {full} "
                f"{rest} END"
            )
        # float8 literals: a bare 1.5 is numeric in SQL, and numeric arithmetic is slow.
        return "(" + (" + ".join(terms) or "float8 '0'") + ")"


Body = Literal["read", "lazy", "every"]  # _scored


def _scored(ranking: _Ranking, match: str, each: int, body: Body) -> str:
    """SQL: up to `each` papers that `match` selects (GIN: any of them, in no order), as
    (c.id, s = their score). `body`: how a word missing from a paper's rank_tsv is looked up
    in its search_tsv (TOAST: fetched and decompressed, ~10 us): "read" once per paper,
    "lazy" only for a paper that needs it (once per such word), "every" never (the match
    guarantees every word)."""
    tsv = "p.search_tsv || CAST('' AS tsvector)" if body == "read" else "p.search_tsv"
    return (
        f"SELECT c.id, {ranking.score(body == 'every')} AS s FROM (SELECT p.id, "
        f"p.rank_tsv AS r, ts_filter(p.rank_tsv, '{{a}}') AS ttl, {tsv} AS tsv "
        f"FROM papers p WHERE {match} LIMIT {int(each)}) c"
    )


class IndexLockedError(RuntimeError):
    """Another process holds the search-index lock."""


def _word_query(params: dict[str, Any], word: str, prefix: str = "w") -> str:
    """A tsquery matching a word stemmed (English: titles, abstracts) or as a name (simple).
    `prefix` names its bind parameter: the ranking's words and the constraints' excluded
    words are numbered in separate dicts, then bound together."""
    key = f"{prefix}{len(params)}"
    params[key] = word
    return f"(plainto_tsquery('english', :{key}) || plainto_tsquery('simple', :{key}))"


def _name_query(params: dict[str, Any], name: str) -> str | None:
    """A tsquery for a (folded) name as consecutive words of the author list (weight B)."""
    tokens = TOKEN.findall(fold(name))[:MAX_TOKENS]
    if not tokens:
        return None
    key = f"n{len(params)}"
    params[key] = " <-> ".join(f"{t}:B" for t in tokens)
    return f"to_tsquery('simple', :{key})"


def one_edit(word: str) -> list[str]:
    """Every string one deletion, transposition, replacement or insertion away (Norvig)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in FUZZY_ALPHABET}
    out |= {a + c + b for a, b in splits for c in FUZZY_ALPHABET}
    out.discard(word)
    return sorted(out)


def _constraints(q: ParsedQuery, params: dict[str, Any]) -> list[str]:
    """Phrases, exclusions and filters as SQL conditions on papers p (always: not hidden)."""
    where = ["NOT p.hidden"]
    for phrase in q.phrases:
        key = f"ph{len(params)}"
        params[key] = phrase
        where.append(
            f"(p.search_tsv @@ phraseto_tsquery('english', :{key}) "
            f"OR p.search_tsv @@ phraseto_tsquery('simple', :{key}))"
        )
    for excluded in q.excludes:
        where.append(f"NOT (p.search_tsv @@ {_word_query(params, excluded, 'x')})")
    for name in q.authors:
        tsq = _name_query(params, name)
        # Names are in the small in-row vector: the consecutive-words check reads no TOAST.
        where.append(f"p.rank_tsv @@ {tsq}" if tsq else "FALSE")
    for cat in q.categories:
        key = f"c{len(params)}"
        params[key], params[key + "p"] = cat.lower(), cat.lower() + ".%"
        where.append(
            "EXISTS (SELECT 1 FROM paper_categories c WHERE c.paper_id = p.id AND "
            f"(lower(c.category) = :{key} OR lower(c.category) LIKE :{key}p))"
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


class _SeqScan:
    """Whether the planner may answer a match with a table scan (transaction-local setting).

    On search_tsv the planner must use the GIN index: it prices a tsvector match at a few CPU
    operators, but there each test reads and decompresses a TOAST value (~10 µs), so a scan
    that tests 7,000 rows to find 500 matches costs ~70 ms where the index gives them in a
    few. The candidate sources all run with it off (the title source on rank_tsv too: its
    matches are few). The previous value is put back, so the rest of the request plans as
    usual. `early`: the first statement that can (the query words' statistics) turns it off
    in passing, and the sources' statement puts it back: no round trip of its own.
    """

    def __init__(self, conn: Connection, early: bool = False) -> None:
        self.conn = conn
        self.prev: str | None = None
        self.early = early

    # SQL of a one-row CTE that turns the table scans off and gives the previous value.
    OFF = (
        "MATERIALIZED (SELECT current_setting('enable_seqscan') AS prev, "
        "set_config('enable_seqscan', 'off', true))"
    )

    def allow(self, allowed: bool) -> None:
        if not allowed and self.prev is None:
            self.prev = self.conn.execute(
                text(
                    "SELECT current_setting('enable_seqscan'), "
                    "set_config('enable_seqscan', 'off', true)"
                )
            ).scalar_one()
        elif allowed and self.prev is not None:
            self.conn.execute(
                text("SELECT set_config('enable_seqscan', :v, true)"), {"v": self.prev}
            )
            self.prev = None

    def probed(self) -> None:
        """After GIN probes: scans allowed again, unless the search needs them off next."""
        if not self.early:
            self.allow(True)


class PgKeywordBackend:
    """KeywordBackend over papers.search_tsv and rank_tsv (see keyword.KeywordBackend).

    Ranking: each query word counts its IDF (BM25's, from search_lexicon) when a paper has it,
    and TITLE_BONUS x that again when the paper's title has it. PostgreSQL cannot prune a
    top-k like a BM25 engine, so only papers from three candidate sources are scored, each
    source's vector read (and decompressed from TOAST) once: every word in the title (the
    small in-row rank_tsv), every word anywhere, and any of the rarest words, as many of
    them as have RARE_BUDGET papers in all (a paper without any of those can only score
    from common, low-IDF words).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._rankings: dict[tuple[tuple[str, ...], tuple[str, ...]], _Ranking] = {}

    def analyze(self, value: str) -> list[str]:
        return list(english_analyzer().analyze(value))

    def _ranking(self, q: ParsedQuery, seqscan: _SeqScan) -> _Ranking:
        """The query's words with their IDF and the score SQL (once per query: search() and
        scores() of one request share it)."""
        key = (tuple(q.terms), tuple(q.phrases))
        if key not in self._rankings:
            self._rankings[key] = self._rank_words(q, seqscan)
        return self._rankings[key]

    def _rank_words(self, q: ParsedQuery, seqscan: _SeqScan) -> _Ranking:
        words = [*q.terms, *q.phrases]
        params: dict[str, Any] = {}
        per_word = [_word_query(params, w) for w in words]
        dfs, total = self._doc_freqs(words, per_word, params, seqscan)
        fuzzy = self._fuzzy({i: words[i] for i in range(len(q.terms)) if dfs[i] == 0}, seqscan)
        for i, variants in fuzzy.items():
            key = f"fz{i}"
            params[key] = variants
            per_word[i] = f"({per_word[i]} || to_tsquery('english', :{key}))"
        if fuzzy:  # a corrected word is as common as the words it stands for
            redo, _ = self._doc_freqs(
                [words[i] for i in fuzzy], [per_word[i] for i in fuzzy], params, seqscan, live=True
            )
            for i, df in zip(fuzzy, redo, strict=True):
                dfs[i] = df
        ranked = sorted(
            (
                _Word(tsq, df, math.log(1 + (total - df + 0.5) / (df + 0.5)))
                for tsq, df in zip(per_word, dfs, strict=True)
                if df  # None: a stop word; 0: no paper has it
            ),
            key=lambda w: (-w.idf, w.tsq),
        )
        return _Ranking(ranked, params)

    def _doc_freqs(
        self,
        words: list[str],
        tsqs: list[str],
        params: dict[str, Any],
        seqscan: _SeqScan,
        live: bool = False,
    ) -> tuple[list[int | None], int]:
        """(papers having each word, papers in all): from search_lexicon, or counted live (up
        to LIVE_DF_CAP) for words it lacks (new since the last `paperfeed index`, or typos).
        An English stop word gets None: it is in no abstract's vector, so ranking on it would
        only reward author names that happen to spell it."""
        if not words:
            return [], 1
        rows: Sequence[Any] = [(1, None, None)] * len(words)  # live: count every word
        if not live:
            off = seqscan.early and seqscan.prev is None
            rows = self.conn.execute(
                text(
                    (f"WITH s AS {_SeqScan.OFF} " if off else "")
                    + "SELECT numnode(plainto_tsquery('english', w)), (SELECT max(l.ndoc) "
                    "FROM search_lexicon l WHERE l.word = ANY(tsvector_to_array("
                    f"to_tsvector('english', w) || to_tsvector('simple', w)))), {PAPERS_ESTIMATE}"
                    + (", s.prev " if off else " ")
                    + "FROM unnest(CAST(:ws AS text[])) WITH ORDINALITY AS t(w, i) "
                    + ("CROSS JOIN s " if off else "")
                    + "ORDER BY i"
                ),
                {"ws": words},
            ).all()
            if off:
                seqscan.prev = str(rows[0][3])
        dfs: list[int | None] = [
            None if not nodes else -1 if df is None else int(df) for nodes, df, *_ in rows
        ]
        total = int(rows[0][2] or -1)  # the planner's estimate; -1: never analysed
        missing = [i for i, df in enumerate(dfs) if df == -1]
        if missing:
            counts = "".join(
                f", (SELECT count(*) FROM (SELECT 1 FROM papers WHERE search_tsv @@ {tsqs[i]} "
                f"LIMIT {LIVE_DF_CAP}) x)"
                for i in missing
            )
            seqscan.allow(False)  # GIN probes: a scan "until enough" reads TOAST for every row
            row = self.conn.execute(text(f"SELECT {PAPERS_ESTIMATE}{counts}"), params).one()
            seqscan.probed()
            for i, n in zip(missing, row[1:], strict=True):
                dfs[i] = int(n)
            total = int(row[0])
        if total <= 0:  # never analysed (a new, small catalog): count
            total = int(
                self.conn.execute(text("SELECT count(*) FROM papers WHERE NOT hidden")).scalar_one()
            )
        return dfs, max(total, *(df or 0 for df in dfs), 1)

    def _best(
        self,
        ranking: _Ranking,
        match: str,
        params: dict[str, Any],
        n: int,
        each: int,
        body: Body,
    ) -> list[tuple[int, float]]:
        """The n best of _scored's papers; those that score 0 (no word) are left out."""
        sql = f"{_scored(ranking, match, each, body)} ORDER BY s DESC, c.id DESC LIMIT {int(n)}"
        rows = self.conn.execute(text(sql), params)
        return [(int(r[0]), float(r[1])) for r in rows if r[1] > 0]

    def _from_sources(
        self,
        ranking: _Ranking,
        sources: list[tuple[str, int, Body]],
        cond: str,
        params: dict[str, Any],
        limit: int,
        seqscan: _SeqScan,
    ) -> list[tuple[int, float]]:
        """The `limit` best papers of the candidate sources, in one statement (under load each
        round trip waits for a core; a search made one per source, and one more to put the
        table scans back). Each source is _best's query on the papers the earlier ones did not
        give, and runs only while they gave fewer than `limit` (a one-time filter: a source
        that is not needed is never scanned; OFFSET 0 keeps each score computed once). The
        statement also puts `enable_seqscan` back: it was planned with scans off, before any
        of it runs."""
        ctes: list[str] = []
        for i, (match, each, body) in enumerate(sources):
            earlier = " UNION ALL ".join(f"SELECT id FROM s{j}" for j in range(i))
            gate = f" AND (SELECT count(*) FROM ({earlier}) e) < {int(limit)}" if i else ""
            new = f" AND c.id NOT IN ({earlier})" if i else ""
            scored = _scored(ranking, f"{match} AND {cond}{gate}", each, body)
            ctes.append(
                f"s{i} AS MATERIALIZED (SELECT c.id, c.s FROM ({scored} OFFSET 0) c "
                f"WHERE c.s > 0{new} ORDER BY c.s DESC, c.id DESC LIMIT {int(limit)})"
            )
        found = " UNION ALL ".join(f"SELECT id, s FROM s{i}" for i in range(len(sources)))
        restore = seqscan.prev is not None
        if restore:  # the preserved side of a LEFT JOIN: runs even when nothing matched
            ctes.append("r AS MATERIALIZED (SELECT set_config('enable_seqscan', :prev, true))")
            params = {**params, "prev": seqscan.prev}
            found = f"SELECT x.id, x.s FROM r LEFT JOIN ({found}) x ON TRUE"
        rows = self.conn.execute(
            text(
                f"WITH {', '.join(ctes)} SELECT id, s FROM ({found}) f "
                f"ORDER BY s DESC NULLS LAST, id DESC LIMIT {int(limit)}"
            ),
            params,
        ).all()
        if restore:
            seqscan.prev = None
        return [(int(r[0]), float(r[1])) for r in rows if r[0] is not None]

    def search(self, q: ParsedQuery, limit: int) -> KeywordResult:
        """The `limit` best papers of the candidate sources (see the class)."""
        words = [*q.terms, *q.phrases]
        params: dict[str, Any] = {}
        cond = " AND ".join(_constraints(q, params))
        if not words:
            if not q.has_filters and not q.excludes:
                return KeywordResult([], 0)
            # Filters only: newest first (relevance means nothing without words).
            rows = self.conn.execute(
                text(
                    f"SELECT p.id FROM papers p WHERE {cond} "
                    "ORDER BY p.published DESC NULLS LAST, p.id DESC LIMIT :limit"
                ),
                {**params, "limit": limit},
            ).all()
            return KeywordResult([(int(r[0]), 0.0) for r in rows], len(rows))
        # Not in a `finally`: after a failed statement the transaction is aborted (and its
        # SET LOCAL with it); restoring then would only hide the original error.
        seqscan = _SeqScan(self.conn, early=True)
        ranking = self._ranking(q, seqscan)
        if not ranking.words:  # only stop words, or words no paper has
            seqscan.allow(True)
            return KeywordResult([], 0)
        params.update(ranking.params)
        tokens = [t for w in words for t in TOKEN.findall(w)][:MAX_TOKENS]
        # Best first: a paper with every word in its title has the highest score possible,
        # and one with every word anywhere the next; a source runs only while the earlier
        # ones gave fewer than `limit` papers. Last, when too few papers have every word,
        # those with any of the rarest words compete (a paper with none of them can only
        # score from common, low-IDF words).
        # A paper from the first two sources has every word: it scores from rank_tsv alone.
        sources: list[tuple[str, int, Body]] = []
        if tokens:
            # The title is in rank_tsv too: this match never reads the abstract's vector.
            params["title_all"] = " & ".join(f"{t}:A" for t in tokens)
            # ("lazy": a word of several lexemes, such as "GPT-4", may still need search_tsv.)
            sources.append(("p.rank_tsv @@ to_tsquery('english', :title_all)", CANDIDATES, "lazy"))
        sources.append(
            (f"p.search_tsv @@ ({' && '.join(w.tsq for w in ranking.words)})", CANDIDATES, "every")
        )
        if len(ranking.words) > 1:
            rare: list[str] = []
            budget = 0
            for w in ranking.words:
                if rare and budget + w.df > RARE_BUDGET:
                    break
                rare.append(w.tsq)
                budget += w.df
            sources.append((f"p.search_tsv @@ ({' || '.join(rare)})", RARE_BUDGET, "read"))
        seqscan.allow(False)  # the sources are GIN matches (see _SeqScan)
        hits = self._from_sources(ranking, sources, cond, params, limit, seqscan)
        # As the tantivy side: `limit` hits mean "at least that many" (counting is not free).
        return KeywordResult(hits, len(hits))

    def scores(self, q: ParsedQuery, paper_ids: Sequence[int]) -> dict[int, float]:
        """The score search() gives each of paper_ids (absent: no word matches), for scoring
        the semantic side's candidates that the keyword top-k did not reach."""
        if not paper_ids or not (q.terms or q.phrases):
            return {}
        params: dict[str, Any] = {"ids": id_array(paper_ids)}
        cond = " AND ".join(_constraints(q, params))
        ranking = self._ranking(q, _SeqScan(self.conn))
        if not ranking.words:
            return {}
        params.update(ranking.params)
        match = f"p.id = ANY(CAST(:ids AS bigint[])) AND {cond}"
        return dict(self._best(ranking, match, params, len(paper_ids), len(paper_ids), "read"))

    def _fuzzy(self, unknown: dict[int, str], seqscan: _SeqScan) -> dict[int, str]:
        """For each long word no paper contains (a typo; index in the query's terms -> word):
        its one-edit variants that some paper contains, OR'ed (-> to_tsquery text).

        PostgreSQL has no fuzzy term query without extensions (pg_trgm, fuzzystrmatch) that
        hosted servers may lack. Variants are looked up in search_lexicon; before the first
        `paperfeed index` fills it, each is probed in the GIN index (short posting lists).
        Only variants some paper has are kept: variants nobody wrote would make the planner
        expect most of the table to match and scan all of it.
        """
        candidates = {
            i: w.lower()
            for i, w in unknown.items()
            if FUZZY_MIN_CHARS <= len(w) <= FUZZY_MAX_CHARS and w.isascii() and w.isalpha()
        }
        if not candidates:
            return {}
        variants = {w: one_edit(w) for w in set(candidates.values())}
        every = sorted({v for vs in variants.values() for v in vs})
        have_lexicon = self.conn.execute(text("SELECT EXISTS (SELECT 1 FROM search_lexicon)"))
        if have_lexicon.scalar():
            found = (
                "SELECT 1 FROM search_lexicon l WHERE l.word = ANY(tsvector_to_array("
                "to_tsvector('english', v)))"
            )
        else:
            seqscan.allow(False)  # GIN probes: short posting lists
            found = "SELECT 1 FROM papers WHERE search_tsv @@ to_tsquery('english', v)"
        known = set(
            self.conn.execute(
                text(f"SELECT v FROM unnest(CAST(:vs AS text[])) AS v WHERE EXISTS ({found})"),
                {"vs": every},
            ).scalars()
        )
        seqscan.probed()
        out = {}
        for i, w in candidates.items():
            real = [v for v in variants[w] if v in known]
            if real:
                out[i] = " | ".join(real)
        return out

    def filter_ids(self, q: ParsedQuery, paper_ids: Sequence[int]) -> set[int]:
        """Those of paper_ids that satisfy the query's phrases, exclusions and filters."""
        params: dict[str, Any] = {"ids": id_array(paper_ids)}
        where = _constraints(q, params)
        if len(where) == 1 or not paper_ids:  # only "not hidden": nothing to filter
            return set(paper_ids)
        stmt = text(
            f"SELECT p.id FROM papers p WHERE p.id = ANY(CAST(:ids AS bigint[])) "
            f"AND {' AND '.join(where)}"
        )
        return set(self.conn.execute(stmt, params).scalars())

    def title_matches(self, value: str) -> list[int]:
        key = title_key(value)
        if not key:
            return []
        rows = self.conn.execute(
            text(
                f"SELECT id FROM papers WHERE {TITLE_KEY_SQL} = :k AND NOT hidden "
                "ORDER BY id LIMIT 5"
            ),
            {"k": key},
        )
        return [int(r[0]) for r in rows]

    def count(self) -> int:
        return int(
            self.conn.execute(text("SELECT count(*) FROM papers WHERE NOT hidden")).scalar_one()
        )

    # The column is generated: writes are PostgreSQL's job.
    def upsert(self, docs: Iterable[KeywordDoc]) -> int:
        return len(list(docs))

    def delete(self, paper_ids: Iterable[int]) -> None:
        return None

    def clear(self) -> None:
        return None


def id_array(paper_ids: Iterable[int]) -> str:
    """A bigint[] literal for CAST(:ids AS bigint[]): one string is dumped in C, where
    psycopg dumps a list element by element in Python (~0.1 ms per 200 ids, 4 lists a search)."""
    return "{" + ",".join(map(str, map(int, paper_ids))) + "}"


def vector_literal(vec: np.ndarray) -> str:
    """pgvector's text form; 7 significant digits keep cosines to ~1e-7."""
    values = np.asarray(vec, dtype=np.float32).ravel().tolist()  # floats format faster
    return "[" + ",".join(f"{x:.7g}" for x in values) + "]"


class PgVectorIndex:
    """Nearest neighbours by inner product (= cosine: vectors are unit) over embeddings.vec."""

    def __init__(self, conn: Connection, ef_search: int = EF_SEARCH_DEFAULT) -> None:
        self.conn = conn
        self.ef_search = ef_search
        self._last: tuple[bytes, str] = (b"", "")  # a search's query vector, as text

    def _literal(self, query: np.ndarray) -> str:
        """vector_literal, once per query vector (a search sends it twice or more)."""
        key = np.asarray(query, dtype=np.float32).tobytes()
        if self._last[0] != key:
            self._last = (key, vector_literal(query))
        return self._last[1]

    def __len__(self) -> int:
        return int(
            self.conn.execute(
                text("SELECT count(*) FROM embeddings WHERE vec IS NOT NULL")
            ).scalar_one()
        )

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (paper_id, cosine) from the HNSW index (approximate, like the IVF side)."""
        if k <= 0:
            return []
        # At least k candidates, or fewer than k come back. SET LOCAL: this transaction only.
        ef = min(HNSW_EF_SEARCH_MAX, max(int(self.ef_search), int(k)))
        if self.conn.info.get("session", {}).get("hnsw.ef_search") != str(ef):
            self.conn.execute(text(f"SET LOCAL hnsw.ef_search = {ef}"))
        rows = self.conn.execute(
            text(
                "SELECT paper_id, -(vec <#> CAST(:q AS vector)) FROM embeddings "
                "WHERE vec IS NOT NULL ORDER BY vec <#> CAST(:q AS vector) LIMIT :k"
            ),
            {"q": self._literal(query), "k": int(k)},
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    def scores(self, query: np.ndarray, paper_ids: list[int]) -> dict[int, float]:
        """Exact cosine of the query with these papers' vectors (those synced), for scoring
        keyword candidates that the semantic top-k did not reach."""
        if not paper_ids:
            return {}
        stmt = text(
            "SELECT paper_id, -(vec <#> CAST(:q AS vector)) FROM embeddings "
            "WHERE paper_id = ANY(CAST(:ids AS bigint[])) AND vec IS NOT NULL"
        )
        rows = self.conn.execute(
            stmt, {"q": self._literal(query), "ids": id_array(paper_ids)}
        ).all()
        return {int(r[0]): float(r[1]) for r in rows}

    def sentence_scores(self, query: np.ndarray, paper_ids: list[int]) -> dict[int, float]:
        """The best cosine of the query with any sentence of each paper (those with sentence
        vectors), computed here from the stored bytes (~3 KB a paper)."""
        if not paper_ids:
            return {}
        stmt = text(
            "SELECT paper_id, sentences FROM embeddings "
            "WHERE paper_id = ANY(CAST(:ids AS bigint[])) AND length(sentences) > 0"
        )
        rows = self.conn.execute(stmt, {"ids": id_array(paper_ids)}).all()
        if not rows:
            return {}
        counts = np.array([len(r[1]) // SENTENCE_RECORD.itemsize for r in rows])
        best = best_sentence_cosines(b"".join(r[1] for r in rows), counts, query)
        return dict(zip([int(r[0]) for r in rows], best.tolist(), strict=True))


class PgVectorSource:
    """Same shape as search.vectors.VectorCache: get() returns the (always current) index."""

    def __init__(self, conn: Connection, ef_search: int = EF_SEARCH_DEFAULT) -> None:
        self._index = PgVectorIndex(conn, ef_search)

    def get(self) -> PgVectorIndex:
        return self._index


_PGVECTOR: dict[str, bool] = {}  # database URL -> has embeddings.vec (fixed by migration 0003)


def has_pgvector(conn: Connection) -> bool:
    """Whether migration 0003 could create embeddings.vec (pgvector installed on the server)."""
    url = conn.engine.url.render_as_string(hide_password=True)
    if url not in _PGVECTOR:
        _PGVECTOR[url] = bool(
            conn.execute(
                text(
                    "SELECT 1 FROM information_schema.columns "
                    "WHERE table_schema = current_schema() "
                    "AND table_name = 'embeddings' AND column_name = 'vec'"
                )
            ).scalar()
        )
    return _PGVECTOR[url]


# Similar papers computed by `paperfeed index` (precompute_similar): neighbours kept per paper.
# search.similar asks for k + 10 (spares for hidden papers): 20 serves the API's default
# k = 10 and the paper page's 5; a larger k is computed when asked, as before.
SIMILAR_KEPT = 20
SIMILAR_BATCH = 500  # papers per statement and commit


def precompute_similar(
    engine: Engine,
    ef_search: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Store the neighbours of every visible paper whose similar_papers row is missing, was
    computed from another embedding (model, text hash) or holds fewer than SIMILAR_KEPT;
    returns how many. A paper page then reads its list by primary key instead of running an
    HNSW query (bench/load.py: a third of its requests are paper pages of a 300k catalog).
    Lists older than PAPERFEED_SIMILAR_CACHE_S are still refreshed by the page view that finds
    them; papers added later join existing lists then. Each batch commits on its own, so an
    interrupted run resumes where it stopped."""
    with db.read(engine) as conn:
        todo = [
            int(r[0])
            for r in conn.execute(
                text(
                    "SELECT e.paper_id FROM embeddings e JOIN papers p ON p.id = e.paper_id "
                    "LEFT JOIN similar_papers s ON s.paper_id = e.paper_id "
                    "WHERE e.vec IS NOT NULL AND NOT p.hidden AND (s.paper_id IS NULL "
                    "OR s.model <> e.model OR s.text_hash <> e.text_hash "
                    "OR CAST(s.neighbours ->> 'asked' AS integer) < :n) ORDER BY e.paper_id"
                ),
                {"n": SIMILAR_KEPT},
            )
        ]
    sql = text(
        "INSERT INTO similar_papers (paper_id, model, text_hash, neighbours, computed_at) "
        "SELECT e.paper_id, e.model, e.text_hash, json_build_object('asked', :n, 'found', "
        "coalesce((SELECT json_agg(json_build_array(x.paper_id, round(CAST(x.s AS numeric), 6)) "
        "ORDER BY x.d) FROM (SELECT o.paper_id, -(o.vec <#> e.vec) AS s, o.vec <#> e.vec AS d "
        "FROM embeddings o WHERE o.vec IS NOT NULL AND o.paper_id <> e.paper_id "
        "ORDER BY o.vec <#> e.vec LIMIT :n) x), CAST('[]' AS json))), "
        "now() AT TIME ZONE 'UTC' FROM embeddings e "
        "WHERE e.paper_id = ANY(CAST(:ids AS bigint[])) AND e.vec IS NOT NULL "
        "ON CONFLICT (paper_id) DO UPDATE SET model = excluded.model, "
        "text_hash = excluded.text_hash, neighbours = excluded.neighbours, "
        "computed_at = excluded.computed_at"
    )
    ef = min(HNSW_EF_SEARCH_MAX, max(int(ef_search), SIMILAR_KEPT + 1))
    done = 0
    if progress:
        progress(0, len(todo))
    for start in range(0, len(todo), SIMILAR_BATCH):
        ids = todo[start : start + SIMILAR_BATCH]
        with db.transaction(engine) as conn:
            conn.execute(text(f"SET LOCAL hnsw.ef_search = {ef}"))
            conn.execute(sql, {"ids": ids, "n": SIMILAR_KEPT})
        done += len(ids)
        if progress:
            progress(done, len(todo))
    return done


def sync_vectors(
    engine: Engine, model_id: str, progress: Callable[[int, int], None] | None = None
) -> int:
    """Copy stored float32 vectors of this model into the pgvector column where it is empty.

    A backfill larger than what the HNSW index already holds (the first `paperfeed index` of a
    big catalog) drops the index and builds it again at the end: one bulk build is far cheaper
    than as many single inserts into the graph. Either way the index exists when this returns.
    """
    with db.read(engine) as conn:
        todo = int(
            conn.execute(
                text("SELECT count(*) FROM embeddings WHERE vec IS NULL AND model = :m"),
                {"m": model_id},
            ).scalar_one()
        )
        have = len(PgVectorIndex(conn))
    rebuild = todo >= BULK_REBUILD_MIN and todo > have
    if rebuild:
        with db.transaction(engine) as conn:
            conn.execute(text(f"DROP INDEX IF EXISTS {HNSW_INDEX}"))
    done = 0
    try:
        while done < todo:
            with db.transaction(engine) as conn:
                rows = conn.execute(
                    text(
                        "SELECT paper_id, vector FROM embeddings "
                        "WHERE vec IS NULL AND model = :m ORDER BY paper_id LIMIT :n"
                    ),
                    {"m": model_id, "n": SYNC_BATCH},
                ).all()
                if not rows:
                    break
                conn.execute(
                    text(
                        "UPDATE embeddings e SET vec = CAST(d.v AS vector) "
                        "FROM unnest(CAST(:ids AS bigint[]), CAST(:vs AS text[])) AS d(p, v) "
                        "WHERE e.paper_id = d.p"
                    ),
                    {
                        "ids": [int(r[0]) for r in rows],
                        "vs": [vector_literal(np.frombuffer(r[1], dtype=np.float32)) for r in rows],
                    },
                )
            done += len(rows)
            if progress:
                progress(min(done, todo), todo)
    finally:
        ensure_hnsw_index(engine)
    return done


LEXICON_KEY = "search:lexicon"  # ingest_state: the catalog state search_lexicon was counted at


def refresh_lexicon(engine: Engine) -> int | None:
    """Recount search_lexicon (ts_stat over the visible papers' vectors) if the catalog
    changed since the last count; the number of words, or None when it was current. One
    transaction: searches see the old counts until the new ones are complete."""
    from paperfeed.ingest import load_checkpoint, save_checkpoint

    with db.transaction(engine) as conn:
        mark = _catalog_mark(conn)
        if load_checkpoint(conn, LEXICON_KEY) == mark:
            return None
        conn.execute(text("DELETE FROM search_lexicon"))
        words = conn.execute(
            text(
                "INSERT INTO search_lexicon (word, ndoc) SELECT word, ndoc FROM "
                "ts_stat('SELECT search_tsv FROM papers WHERE NOT hidden')"
            )
        ).rowcount
        save_checkpoint(conn, LEXICON_KEY, mark)
    return int(words)


def _catalog_mark(conn: Connection) -> dict[str, Any]:
    """What search_lexicon's counts depend on: papers, hidden papers, the newest change."""
    n, hidden, modified = conn.execute(
        text("SELECT count(*), count(*) FILTER (WHERE hidden), max(modified_at) FROM papers")
    ).one()
    return {"papers": int(n), "hidden": int(hidden), "modified": str(modified)}


def lexicon_status(conn: Connection) -> tuple[int, bool]:
    """(words in search_lexicon, whether they were counted on the catalog as it is now)."""
    from paperfeed.ingest import load_checkpoint

    words = int(conn.execute(text("SELECT count(*) FROM search_lexicon")).scalar_one())
    return words, load_checkpoint(conn, LEXICON_KEY) == _catalog_mark(conn)


def ensure_hnsw_index(engine: Engine) -> None:
    """(Re)build the HNSW index if it is missing: migration 0003's definition, bulk-built."""
    with db.transaction(engine) as conn:
        conn.execute(text(f"SET LOCAL maintenance_work_mem = '{HNSW_BUILD_MEMORY}'"))
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON embeddings "
                f"USING hnsw (vec vector_ip_ops) WITH (m = {HNSW_M}, "
                f"ef_construction = {HNSW_EF_CONSTRUCTION})"
            )
        )


def vector_count(engine: Engine) -> int:
    with db.read(engine) as conn:
        return len(PgVectorIndex(conn))


@contextmanager
def exclusive(engine: Engine) -> Iterator[None]:
    """Hold a session advisory lock (every machine sees it) for the duration; never waits."""
    digest = hashlib.blake2b(LOCK_NAME.encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    with engine.connect() as conn:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()
        if not got:
            raise IndexLockedError("another `paperfeed index` is running; try again later")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


@dataclass
class Status:
    """What `paperfeed doctor` reports about PostgreSQL search."""

    keyword_column: bool  # papers.search_tsv exists (migrations 0003/0004)
    pgvector: bool  # embeddings.vec exists
    papers: int  # visible papers
    embedded: int  # papers with a stored embedding
    vectors: int  # embeddings copied into the pgvector column
    lexicon_words: int  # words with document frequencies (search_lexicon)
    lexicon_current: bool  # counted on the catalog as it is now


def status(engine: Engine) -> Status:
    with db.read(engine) as conn:
        tsv = bool(
            conn.execute(
                text(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = "
                    "current_schema() AND table_name = 'papers' AND column_name = 'search_tsv'"
                )
            ).scalar()
        )
        vec = has_pgvector(conn)
        papers = conn.execute(text("SELECT count(*) FROM papers WHERE NOT hidden")).scalar_one()
        embedded = conn.execute(text("SELECT count(*) FROM embeddings")).scalar_one()
        vectors = len(PgVectorIndex(conn)) if vec else 0
        words, current = lexicon_status(conn)
    return Status(tsv, vec, int(papers), int(embedded), vectors, words, current)
