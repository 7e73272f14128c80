"""Search surfaces: the /papers?q= results page, the search and "more like this" JSON API.

`/api/papers/search` (Hugging Face-compatible shape) lives in api/hf.py and calls the same
search(); /api/v1/search here adds snippets, paging and did-you-mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from paperfeed import papers, search
from paperfeed.api.common import ERRORS
from paperfeed.web.deps import ReadConn, SettingsDep, render

router = APIRouter()
PAGE_SIZE = 20  # results per page on /papers?q=
MAX_Q = 10_000  # characters accepted from the URL; the parser uses the first 1,000


def _hit_json(h: search.SearchHit) -> dict[str, Any]:
    return {
        "arxiv_id": h.arxiv_id,
        "title": h.title,
        "authors": h.authors,
        "score": h.score,
        "snippet_html": h.snippet_html,
        "upvotes": h.upvotes,
        "published": h.published.isoformat() if h.published else None,
        "url": f"/papers/{h.arxiv_id}",
    }


@dataclass(frozen=True)
class Result:
    """One result on /papers?q=: the paper's card row and its highlighted snippet."""

    paper: Any
    snippet: Markup


def results_page(
    request: Request, conn: ReadConn, settings: SettingsDep, q: str, p: int
) -> HTMLResponse:
    """The results page (called by the front page route when `q` is present): listing cards."""
    p = max(1, min(p, search.service.MAX_OFFSET // PAGE_SIZE))
    page = search.search(conn, settings, q[:MAX_Q], limit=PAGE_SIZE, offset=(p - 1) * PAGE_SIZE)
    rows = papers.cards_by_ids(conn, [h.paper_id for h in page.hits])
    results = [
        Result(rows[h.paper_id], Markup(h.snippet_html))  # noqa: S704 - escaped by snippets.py
        for h in page.hits
        if h.paper_id in rows  # hidden since it was indexed
    ]
    context = {"query": q[:MAX_Q], "result": page, "results": results, "page_no": p}
    return render(request, "search.html", context)


@router.get("/api/v1/search", responses=ERRORS, tags=["paperfeed"])
def api_search(
    conn: ReadConn,
    settings: SettingsDep,
    q: str = Query("", max_length=MAX_Q, description="Query (see README ## Search)."),
    limit: int = Query(20, ge=1, le=search.service.MAX_LIMIT),
    offset: int = Query(0, ge=0, le=search.service.MAX_OFFSET),
    mode: str = Query("hybrid", pattern="^(hybrid|keyword|semantic)$"),
) -> dict[str, Any]:
    """Ranked papers for a query: hybrid keyword + semantic search."""
    page = search.search(conn, settings, q, limit=limit, offset=offset, mode=mode)
    return {
        "query": page.query,
        "total": page.total,
        "total_is_lower_bound": page.total_is_lower_bound,
        "offset": page.offset,
        "limit": page.limit,
        "next_offset": page.offset + page.limit if page.has_next else None,
        "did_you_mean": page.did_you_mean,
        "message": page.message,
        "notices": page.notices,
        "results": [_hit_json(h) for h in page.hits],
    }


@router.get("/api/papers/{arxiv_id:path}/similar", responses=ERRORS, tags=["paperfeed"])
@router.get("/api/v1/papers/{arxiv_id:path}/similar", responses=ERRORS, tags=["paperfeed"])
def api_similar(
    conn: ReadConn,
    settings: SettingsDep,
    arxiv_id: str,
    limit: int = Query(10, ge=1, le=search.service.MAX_LIMIT),
) -> dict[str, Any]:
    """More like this: the nearest papers in the vector index (never the paper itself)."""
    paper = papers.get_paper(conn, arxiv_id)
    if paper is None:
        raise HTTPException(404, f"{arxiv_id!r} is not in this catalog")
    hits = search.similar(conn, settings, paper.id, limit)
    return {"arxiv_id": paper.arxiv_id, "results": [_hit_json(h) for h in hits]}
