"""search() and similar(): the one domain entry point behind the page, the API and the CLI."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.exc import SQLAlchemyError

from paperfeed.config import Settings
from paperfeed.models import Embedding, Paper, SimilarPapers, utcnow
from paperfeed.search import store
from paperfeed.search.embedder import Embedder, get_embedder
from paperfeed.search.fusion import FusionParams, fuse, with_sentences
from paperfeed.search.keyword import TantivyBackend, english_stems
from paperfeed.search.query import ParsedQuery, parse_query
from paperfeed.search.snippets import Highlighter, snippet_html
from paperfeed.search.vectors import VectorIndex
from paperfeed.sources import InvalidArxivId, parse_arxiv_id

POOL = 100  # candidates taken from each side before fusion (the page is cut from the fused list)
MAX_LIMIT = 100  # results per page
MAX_OFFSET = 1000  # deeper paging is a scraper, not a reader
MODES = ("hybrid", "keyword", "semantic")
SHORT_QUERY_WORDS = 4  # up to this many words, the BM25 of semantic hits runs on the caller
# Anything that looks like a (possibly mistyped) new-style arXiv id inside a query.
_ID_LIKE = re.compile(r"(?<![\d.])(\d{4})[.\s_-]?(\d{4,5})(?:v\d+)?(?![\d.])")
# Query embeddings (and the vector search) run here, overlapping the keyword side on the
# caller's thread (one query's embedding is 3-9 ms of CPU). Two workers: a web
# worker rarely has more searches in flight than cores here; more would queue, not block.
_EMBED_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pf-embed")
# Built once: an expanding IN parameter keeps SQLAlchemy's compiled-statement cache warm (a
# fresh in_(list) per query cost ~1 ms of statement building for 200 ids).
_VISIBLE = select(Paper.id).where(
    Paper.id.in_(bindparam("ids", expanding=True)), Paper.hidden.is_(False)
)
# Hidden papers may sit in the indexes until the next `paperfeed index`. They are few, so they
# are read from their partial index (ix_papers_hidden, migration 0011) rather than checking
# each candidate (200 lookups across the table: ~1 ms at 1M papers). Past HIDDEN_READ_MAX the
# candidates are checked instead.
HIDDEN_READ_MAX = 2000
_HIDDEN = select(Paper.id).where(text("hidden")).limit(HIDDEN_READ_MAX + 1)
_ROWS = select(
    Paper.id,
    Paper.arxiv_id,
    Paper.title,
    Paper.authors,
    Paper.abstract,
    Paper.upvotes,
    Paper.published,
).where(Paper.id.in_(bindparam("ids", expanding=True)), Paper.hidden.is_(False))


@dataclass
class SearchHit:
    paper_id: int
    arxiv_id: str
    title: str
    authors: list[str]
    snippet_html: str  # escaped abstract excerpt, matched words in <mark>
    score: float
    upvotes: int
    published: dt.date | None


@dataclass
class SearchPage:
    query: str
    hits: list[SearchHit]
    total: int  # fused candidates found (see total_is_lower_bound)
    offset: int
    limit: int
    mode: str = "hybrid"
    did_you_mean: str | None = None  # an arXiv id in the catalog the query seems to mean
    message: str | None = None  # why there are no results, or what was ignored
    notices: list[str] = field(default_factory=list)
    total_is_lower_bound: bool = False  # True: at least `total` papers match

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.hits) < self.total and self.offset + self.limit < MAX_OFFSET


def is_indexed(settings: Settings) -> bool:
    """Whether keyword search can answer (PostgreSQL: always; embedded: after `paperfeed index`)."""
    return store.is_indexed(settings)


def _exact_id(raw: str) -> str | None:
    try:
        return parse_arxiv_id(raw.strip())[0]
    except InvalidArxivId:
        return None


def _paper_ids_for(conn: Connection, arxiv_ids: list[str]) -> dict[str, int]:
    if not arxiv_ids:
        return {}
    rows = conn.execute(
        select(Paper.arxiv_id, Paper.id).where(
            Paper.arxiv_id.in_(arxiv_ids), Paper.hidden.is_(False)
        )
    )
    return {a: i for a, i in rows}  # noqa: C416 - Row, not a tuple


class QueryVector:
    """The query's embedding, its top-k in the vector index and the BM25 of those top-k.
    All three start at construction on a worker thread (ONNX Runtime, faiss and tantivy
    release the GIL), so the caller runs the id, title and keyword lookups meanwhile. On
    PostgreSQL the searches read through the caller's connection, which is not shared across
    threads: there only the embedding runs on the worker."""

    def __init__(
        self,
        settings: Settings,
        h: store.Handles,
        q: ParsedQuery,
        k: int,
        bm25: bool = True,
        mode: str = "hybrid",
    ) -> None:
        """bm25=False: the caller needs no BM25 of the semantic hits (semantic-only mode).
        Short queries score them on the caller's thread instead: their keyword side is the
        cheap one, so it finishes first (1M papers: two-word wall p50 15.9 vs 20.3 ms), while
        a long claim's keyword side is the slower one (claims p99 41 vs 64 ms on the worker)."""
        self.index = h.vectors.get() if q.text and settings.search_semantic else None
        self.k = k
        self.bm25: dict[int, float] | None = None  # of the top-k, once get() returned
        self.sentences: dict[int, float] | None = None  # best sentence cosines of the top-k
        self.by_sentences = _by_sentences_for(settings, q, mode)
        self._future: Future[Semantic] | None = None
        if self.index is not None:
            embedder = get_embedder(settings.search_max_tokens, settings.search_query_threads)
            local = self.index if isinstance(self.index, VectorIndex) else None
            keyword = (
                h.keyword
                if isinstance(h.keyword, TantivyBackend)
                and local is not None
                and bm25
                and len(q.terms) > SHORT_QUERY_WORDS
                else None
            )
            self._future = _EMBED_POOL.submit(
                _semantic_side, embedder, q, local, keyword, k, self.by_sentences
            )

    def get(self) -> tuple[store.VectorSearcher, np.ndarray, list[tuple[int, float]]] | None:
        """(index, vector, top-k), or None when there is no semantic side (no index, no text)."""
        if self.index is None or self._future is None:
            return None
        vec, hits, self.bm25, self.sentences = self._future.result()
        if hits is None:
            hits = self.index.search(vec, self.k)
        return self.index, vec, hits


Semantic = tuple[
    np.ndarray, list[tuple[int, float]] | None, dict[int, float] | None, dict[int, float] | None
]


def _semantic_side(
    embedder: Embedder,
    q: ParsedQuery,
    index: VectorIndex | None,
    keyword: TantivyBackend | None,
    k: int,
    sentences: bool,
) -> Semantic:
    """On the worker: the query vector, then (in-process indexes) its top-k, their best
    sentence cosines and their BM25."""
    vec = embedder.embed_query(q.text)
    if index is None:
        return vec, None, None, None
    hits = index.search(vec, k)
    ids = [pid for pid, _ in hits]
    best = index.sentence_scores(vec, ids) if sentences else None
    bm25 = keyword.scores(q, ids) if keyword is not None else None
    return vec, hits, bm25, best


def _semantic(
    settings: Settings, h: store.Handles, q: ParsedQuery, k: int, qv: QueryVector | None = None
) -> tuple[list[tuple[int, float]], store.VectorSearcher | None, np.ndarray | None]:
    """Top-k by cosine among papers passing the query's phrases, exclusions and filters,
    with the index and query vector (for scoring more candidates)."""
    got = (qv or QueryVector(settings, h, q, k, bm25=False)).get()
    if got is None:
        return [], None, None
    index, vec, hits = got
    if q.phrases or q.excludes or q.has_filters:
        allowed = h.keyword.filter_ids(q, [pid for pid, _ in hits])
        hits = [(pid, s) for pid, s in hits if pid in allowed]
    return hits, index, vec


def _by_sentences_for(settings: Settings, q: ParsedQuery, mode: str) -> bool:
    """Whether the semantic side is rescored by abstract sentences: always in semantic search,
    in hybrid search for queries of more than SHORT_QUERY_WORDS words. A few words of a title
    find their paper better by its whole vector (bench/known_item.py: 396 queries of 2-3 title
    words over 2,000 papers, hybrid MRR@10 0.783 without, 0.772 with; semantic alone 0.427 /
    0.471); claims gain (SciFact hybrid 0.732 -> 0.742). README ## Search."""
    if not settings.search_sentences:
        return False
    return mode == "semantic" or len(q.terms) > SHORT_QUERY_WORDS


def _by_sentences(
    index: store.VectorSearcher,
    vec: np.ndarray,
    hits: list[tuple[int, float]],
    known: dict[int, float],
) -> list[tuple[int, float]]:
    """Semantic hits rescored with their best-matching abstract sentence (fusion.with_sentences).
    `known`: best sentence cosines already computed (the semantic top-k's on the worker
    thread, the keyword hits' from what was read while the query was embedded)."""
    if not hits:
        return hits
    best = {pid: known[pid] for pid, _ in hits if pid in known}
    best.update(index.sentence_scores(vec, [pid for pid, _ in hits if pid not in known]))
    return with_sentences(hits, best)


def hybrid_lists(
    settings: Settings,
    q: ParsedQuery,
    pool: int = POOL,
    conn: Connection | None = None,
    h: store.Handles | None = None,
    qv: QueryVector | None = None,
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Both rankings over the union of their top-`pool` candidates, every candidate scored
    by both sides: the exact cosine of keyword-only hits, the BM25 of semantic-only ones.
    Fusing complete scores instead of two truncated lists (where a paper missing from one
    counts as zero there) keeps hybrid Recall@100 above both components on SciFact and CACM
    (bench/search_quality.py, README ## Search). `conn`: the PostgreSQL backends read
    through it. `qv`: the query's embedding, if already started (it is started here, before
    the keyword search, otherwise)."""
    h = h or store.handles(settings, conn)
    qv = qv or QueryVector(settings, h, q, pool)
    keyword = h.keyword.search(q, pool).hits
    # The keyword hits' stored vectors, read while the worker still embeds the query (in-process
    # index; PostgreSQL's are read through the connection when scored).
    read = (
        qv.index.read([pid for pid, _ in keyword], sentences=qv.by_sentences)
        if isinstance(qv.index, VectorIndex)
        else None
    )
    semantic, index, vec = _semantic(settings, h, q, pool, qv)
    if index is not None and vec is not None:
        have = {pid for pid, _ in semantic}
        missing = [pid for pid, _ in keyword if pid not in have]
        if read is not None:
            cosines = read.scores(vec)
            extra = {pid: cosines[pid] for pid in missing if pid in cosines}
        else:
            extra = index.scores(vec, missing)
        semantic = sorted([*semantic, *extra.items()], key=lambda kv: -kv[1])
        if qv.by_sentences:
            known = {**(read.sentence_scores(vec) if read else {}), **(qv.sentences or {})}
            semantic = _by_sentences(index, vec, semantic, known)
    have = {pid for pid, _ in keyword}
    missing = [pid for pid, _ in semantic if pid not in have]
    if qv.bm25 is not None:  # scored on the worker (all of the semantic top-k)
        extra_kw = {pid: qv.bm25[pid] for pid in missing if pid in qv.bm25}
    else:
        extra_kw = h.keyword.scores(q, missing)
    keyword = sorted([*keyword, *extra_kw.items()], key=lambda kv: -kv[1])
    return keyword, semantic


def _is_author_query(q: ParsedQuery) -> bool:
    """Two to four plain words with no operators look like a person's name."""
    return 2 <= len(q.terms) <= 4 and not (q.phrases or q.excludes or q.has_filters)


def search(
    conn: Connection,
    settings: Settings,
    query: str,
    limit: int = 20,
    offset: int = 0,
    mode: str = "hybrid",
    fusion: FusionParams | None = None,
) -> SearchPage:
    """Rank the catalog for a user query; never raises on user input."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    offset = max(0, min(int(offset), MAX_OFFSET))
    mode = mode if mode in MODES else "hybrid"
    q = parse_query(query)
    page = SearchPage(query=q.raw, hits=[], total=0, offset=offset, limit=limit, mode=mode)
    page.notices = list(q.notices)
    if q.is_empty:
        page.message = "Type some words, an arXiv id, or a filter such as author:hinton."
        return page
    h = store.handles(settings, conn)
    # The embedding runs while the id, title and keyword lookups below run on this thread.
    pool = max(POOL, offset + limit)
    qv = (
        QueryVector(settings, h, q, pool, bm25=mode == "hybrid", mode=mode)
        if mode != "keyword" and is_indexed(settings)
        else None
    )
    # The words to mark in snippets, and their matcher: built now, while the embedding runs
    # (its regex compile is ~0.4 ms that would otherwise follow the wait for the embedding).
    matched: set[str] = set()
    for word in [*q.terms, *q.phrases]:
        matched.update(h.keyword.analyze(word))
    highlight = Highlighter(matched, english_stems)  # pf_en: both backends analyse with it
    pinned: list[int] = []
    # Exact arXiv id ('2405.15738', 'arXiv:2405.15738v2', an abs URL) or id-like text.
    exact = _exact_id(q.raw)
    candidates = [exact] if exact else [f"{a}.{b}" for a, b in _ID_LIKE.findall(q.raw)]
    found = _paper_ids_for(conn, candidates)
    if exact and exact in found:
        pinned.append(found[exact])
    elif found:
        page.did_you_mean = next(iter(found))
    elif exact:
        page.message = f"arXiv:{exact} is not in this catalog."
    if not q.has_filters and q.text:
        pinned += [pid for pid in h.keyword.title_matches(q.raw) if pid not in pinned]
    if not is_indexed(settings):
        # Right after ingestion, before the first `paperfeed index`: title words, most upvoted.
        page.notices.append("The search index is not built yet: showing title matches only.")
        ranked = _title_like(conn, q, pool)
        return _finish(conn, page, pinned + [p for p, _ in ranked if p not in pinned], set(), h)
    kw = h.keyword.search(q, pool) if mode == "keyword" else None
    keyword_hits = kw.hits if kw else []
    semantic_hits: list[tuple[int, float]] = []
    if mode == "semantic" and q.text:
        semantic_hits, index, vec = _semantic(settings, h, q, pool, qv)
        if index is not None and vec is not None and qv is not None and qv.by_sentences:
            semantic_hits = _by_sentences(index, vec, semantic_hits, qv.sentences or {})
    if mode == "keyword":
        ranked = keyword_hits
    elif mode == "semantic":
        ranked = semantic_hits
    else:
        keyword_hits, semantic_hits = hybrid_lists(settings, q, pool, conn, h, qv)
        params = fusion or FusionParams()
        by_sentences = qv is not None and qv.by_sentences
        ranked = fuse(
            keyword_hits, semantic_hits, params.for_sentences() if by_sentences else params
        )
    if mode == "hybrid" and _is_author_query(q) and ranked:
        by_author = h.keyword.filter_ids(
            ParsedQuery(authors=[" ".join(q.terms)]), [pid for pid, _ in ranked]
        )
        ranked = [r for r in ranked if r[0] in by_author] + [
            r for r in ranked if r[0] not in by_author
        ]
    top = max((s for _, s in ranked), default=1.0)
    ranked = [(pid, top + 1.0) for pid in pinned] + [r for r in ranked if r[0] not in pinned]
    ranked = _without_hidden(conn, ranked)
    while True:  # a paper deleted from the catalog but still indexed gives way to the next
        shown = ranked[offset : offset + limit]
        rows = _rows(conn, [pid for pid, _ in shown])
        gone = {pid for pid, _ in shown if pid not in rows}
        if not gone:
            break
        ranked = [r for r in ranked if r[0] not in gone]
    # Candidates after fusion; a full pool means there may be more (counting them all would
    # turn off tantivy's WAND pruning, or rank every match on PostgreSQL): the page shows "100+".
    page.total = len(ranked)
    page.total_is_lower_bound = len(keyword_hits) >= pool or len(semantic_hits) >= pool
    for pid, score in shown:
        r = rows[pid]
        page.hits.append(
            SearchHit(
                paper_id=pid,
                arxiv_id=r.arxiv_id,
                title=r.title,
                authors=list(r.authors or []),
                snippet_html=highlight.snippet(r.abstract or ""),
                score=round(float(score), 6),
                upvotes=r.upvotes or 0,
                published=r.published,
            )
        )
    if not page.hits and page.message is None:
        page.message = "No papers match." if offset == 0 else "No more results."
    return page


def _without_hidden(conn: Connection, ranked: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The candidates less hidden papers (which stay in the indexes until `paperfeed index`)."""
    if not ranked:
        return ranked
    hidden = conn.execute(_HIDDEN).scalars().all()
    if len(hidden) > HIDDEN_READ_MAX:
        ids = [pid for pid, _ in ranked]
        visible = set(conn.execute(_VISIBLE, {"ids": ids}).scalars().all())
        return [r for r in ranked if r[0] in visible]
    gone = set(hidden)
    return [r for r in ranked if r[0] not in gone] if gone else ranked


def _title_like(conn: Connection, q: ParsedQuery, limit: int) -> list[tuple[int, float]]:
    """Papers whose title contains every query word (the fallback without an index)."""
    words = [w for w in " ".join([*q.terms, *q.phrases]).split() if w.strip()][:8]
    if not words:
        return []
    escaped = [w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in words]
    query = (
        select(Paper.id, Paper.upvotes)
        .where(*[Paper.title.ilike(f"%{w}%", escape="\\") for w in escaped])
        .where(Paper.hidden.is_(False))
        .order_by(Paper.upvotes.desc(), Paper.id.desc())
        .limit(limit)
    )
    return [(r.id, float(r.upvotes or 0)) for r in conn.execute(query)]


def _finish(
    conn: Connection, page: SearchPage, ids: list[int], matched: set[str], h: store.Handles
) -> SearchPage:
    """Fill the page from an ordered id list (scores: 1/rank)."""
    page.total = len(ids)
    shown = ids[page.offset : page.offset + page.limit]
    rows = _rows(conn, shown)
    highlight = Highlighter(matched, english_stems)  # pf_en: both backends analyse with it
    for rank, pid in enumerate(shown, start=page.offset + 1):
        if pid in rows:
            r = rows[pid]
            page.hits.append(
                SearchHit(
                    paper_id=pid,
                    arxiv_id=r.arxiv_id,
                    title=r.title,
                    authors=list(r.authors or []),
                    snippet_html=highlight.snippet(r.abstract or ""),
                    score=round(1.0 / rank, 6),
                    upvotes=r.upvotes or 0,
                    published=r.published,
                )
            )
    if not page.hits and page.message is None:
        page.message = "No papers match."
    return page


def _rows(conn: Connection, ids: list[int]) -> dict[int, Any]:
    """Display fields of visible papers by id."""
    if not ids:
        return {}
    return {r.id: r for r in conn.execute(_ROWS, {"ids": ids}).all()}


def similar(conn: Connection, settings: Settings, paper_id: int, k: int = 10) -> list[SearchHit]:
    """The k nearest papers to this one in the vector index (never itself, never hidden)."""
    k = max(1, min(int(k), MAX_LIMIT))
    if not is_indexed(settings):
        return []
    row = conn.execute(
        select(Embedding.vector, Embedding.model, Embedding.text_hash).where(
            Embedding.paper_id == paper_id
        )
    ).first()
    index = store.handles(settings, conn).vectors.get()
    if row is None or index is None:
        return []
    neighbours = _neighbours(conn, settings, index, paper_id, row, k + 10)
    rows = _rows(conn, [pid for pid, _ in neighbours])
    hits: list[SearchHit] = []
    for pid, score in neighbours:
        if pid in rows and len(hits) < k:
            r = rows[pid]
            abstract = r.abstract or ""
            hits.append(
                SearchHit(
                    paper_id=pid,
                    arxiv_id=r.arxiv_id,
                    title=r.title,
                    authors=list(r.authors or []),
                    snippet_html=snippet_html(abstract, set(), lambda s: []),
                    score=round(score, 6),
                    upvotes=r.upvotes or 0,
                    published=r.published,
                )
            )
    return hits


def _neighbours(
    conn: Connection,
    settings: Settings,
    index: store.VectorSearcher,
    paper_id: int,
    emb: Any,
    n: int,
) -> list[tuple[int, float]]:
    """Up to n (paper id, cosine) nearest to the paper's embedding `emb`, itself left out.

    On pgvector they are kept in similar_papers (one HNSW query costs the database ~14 ms,
    on every paper page) and reused while the paper's embedding is the same and for
    PAPERFEED_SIMILAR_CACHE_S; every web process shares them. Hidden papers are left out
    when the hits are read (`_rows`), so hiding one takes effect at once."""
    from paperfeed.search.pg import PgVectorIndex

    vec = np.frombuffer(emb.vector, dtype=np.float32)
    cached = isinstance(index, PgVectorIndex) and settings.similar_cache_s > 0
    if cached:
        fresh = utcnow() - dt.timedelta(seconds=settings.similar_cache_s)
        kept = conn.execute(
            select(SimilarPapers.neighbours).where(
                SimilarPapers.paper_id == paper_id,
                SimilarPapers.model == emb.model,
                SimilarPapers.text_hash == emb.text_hash,
                SimilarPapers.computed_at >= fresh,
            )
        ).scalar()
        # Asked for at least n: it holds n, or all there were (a small catalog).
        if kept is not None and kept["asked"] >= n:
            return [(int(pid), float(s)) for pid, s in kept["found"][:n]]
    if isinstance(index, PgVectorIndex):  # a shorter candidate list than search's
        index = PgVectorIndex(index.conn, settings.similar_hnsw_ef_search)
    found = [(pid, s) for pid, s in index.search(vec, n + 1) if pid != paper_id][:n]
    if cached:
        from sqlalchemy.dialects.postgresql import insert

        values = {
            "model": emb.model,
            "text_hash": emb.text_hash,
            "neighbours": {"asked": n, "found": [[pid, round(s, 6)] for pid, s in found]},
            "computed_at": utcnow(),
        }
        # In the request's transaction (a second connection per request could exhaust the
        # pool under load), behind a savepoint: a failed write (the paper deleted meanwhile)
        # loses the cache entry, never the page.
        with contextlib.suppress(SQLAlchemyError), conn.begin_nested():
            conn.execute(
                insert(SimilarPapers)
                .values(paper_id=paper_id, **values)
                .on_conflict_do_update(index_elements=["paper_id"], set_=values)
            )
    return found
