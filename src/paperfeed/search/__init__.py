"""Search: keyword (tantivy BM25) + semantic (MiniLM ONNX) retrieval, fused; similar papers.

Stable API for the rest of paperfeed:
    search(conn, settings, query, limit=20, offset=0, mode="hybrid") -> SearchPage
    similar(conn, settings, paper_id, k=10) -> list[SearchHit]
    index_pending(engine, settings, progress=None) -> IndexReport
    parse_query(text) -> ParsedQuery
"""

from paperfeed.search.indexing import IndexBusyError, IndexReport, index_pending
from paperfeed.search.query import ParsedQuery, parse_query
from paperfeed.search.service import (
    MAX_LIMIT,
    SearchHit,
    SearchPage,
    is_indexed,
    search,
    similar,
)

__all__ = [
    "MAX_LIMIT",
    "IndexBusyError",
    "IndexReport",
    "ParsedQuery",
    "SearchHit",
    "SearchPage",
    "index_pending",
    "is_indexed",
    "parse_query",
    "search",
    "similar",
]
