"""The front page (day / week / month) and the paper page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paperfeed import papers, search
from paperfeed.api.common import cached
from paperfeed.config import Settings
from paperfeed.sources import InvalidArxivId, parse_arxiv_id
from paperfeed.web import cards, search_routes
from paperfeed.web.deps import ReadConn, SettingsDep, render

router = APIRouter()
# The paper page's path converter matches old-style ids with a slash (hep-th/9901001), so it
# would shadow every /papers/<word> route: app.py includes this router last.
paper_router = APIRouter()

NEW_WINDOW = dt.timedelta(hours=24)  # "new" marker: featured within the last 24 hours
PAGE_SIZE = 100  # cards per listing page; a busy month has ~600 featured papers
SIMILAR_COUNT = 5  # "Similar papers" on the paper page


@router.get("/", include_in_schema=False)
def home() -> Response:
    return RedirectResponse("/papers", status_code=307)


def _listing(
    request: Request, conn: ReadConn, settings: Settings, period: papers.Period, page: int
) -> HTMLResponse:
    page = max(1, page)

    def build() -> tuple[list[Any], tuple[papers.Period | None, papers.Period | None]]:
        found = papers.featured_in(conn, period, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        return found, papers.neighbours(conn, period)

    # Rows and neighbours through the listing cache, as trending: a new or changed paper
    # misses at once; the cards' upvote counts are read live (rows_cached below).
    items, (prev, nxt) = cached(request, conn, settings, build, key="listing")
    new_since = (dt.datetime.now(dt.UTC) - NEW_WINDOW).date()
    rows = items[:PAGE_SIZE]

    def parts(subset: Sequence[Any]) -> dict[int, cards.CardParts]:
        return cards.card_parts(request, conn, subset, new_since=new_since)

    context = {
        "period": period,
        "papers": rows,
        "rows_cached": True,  # the viewer's live upvote counts are loaded for them
        # The shared HTML of the cards is cached; each viewer's vote state is not.
        "parts": cards.cached_card_parts(request, conn, settings, rows, parts),
        "prev": prev,
        "next": nxt,
        "new_since": new_since,
        "page": page,
        "more": len(items) > PAGE_SIZE,
        "rank_offset": (page - 1) * PAGE_SIZE,
    }
    return render(request, "listing.html", context)


@router.get("/papers", response_class=HTMLResponse, include_in_schema=False)
def front_page(
    request: Request, conn: ReadConn, settings: SettingsDep, p: int = 1, q: str | None = None
) -> HTMLResponse:
    """The latest featured day; with ?q= the search results."""
    if q is not None:
        return search_routes.results_page(request, conn, settings, q, p)
    latest = (
        cached(request, conn, settings, lambda: papers.latest_featured_date(conn), key="latest")
        or dt.date.today()
    )
    return _listing(request, conn, settings, papers.Period.containing("date", latest), p)


@router.get("/papers/{kind}/{slug}", response_class=HTMLResponse, include_in_schema=False)
def period_page(
    request: Request, conn: ReadConn, settings: SettingsDep, kind: str, slug: str, p: int = 1
) -> HTMLResponse:
    """/papers/date/YYYY-MM-DD, /papers/week/YYYY-Www, /papers/month/YYYY-MM."""
    if kind not in ("date", "week", "month"):
        return paper_page(request, conn, f"{kind}/{slug}")
    try:
        period = papers.Period.parse(kind, slug)
    except ValueError as exc:
        example = {"date": "2024-05-27", "week": "2024-W22", "month": "2024-05"}[kind]
        raise HTTPException(
            404, f"{slug!r} is not a {kind}; use e.g. /papers/{kind}/{example}"
        ) from exc
    return _listing(request, conn, settings, period, p)


@paper_router.get("/papers/{arxiv_id:path}", response_class=HTMLResponse, include_in_schema=False)
def paper_page(request: Request, conn: ReadConn, arxiv_id: str) -> HTMLResponse:
    """One paper: abstract with math, links, BibTeX. Unknown ids get a helpful 404."""
    try:
        canonical, _ = parse_arxiv_id(arxiv_id)
    except InvalidArxivId:
        return render(
            request, "not_found.html", {"query": arxiv_id, "valid": False}, status_code=404
        )
    paper = papers.get_paper(conn, canonical)
    if paper is None:
        return render(
            request, "not_found.html", {"query": canonical, "valid": True}, status_code=404
        )
    from paperfeed.web.community_routes import paper_context  # comments, follows, collections

    user = getattr(request.state, "user", None)
    similar = search.similar(conn, request.app.state.settings, paper.id, SIMILAR_COUNT)
    context = {
        "paper": paper,
        "bibtex": papers.bibtex(paper),
        "similar": similar,
        **paper_context(conn, paper, user),
    }
    return render(request, "paper.html", context)
