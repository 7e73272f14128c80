"""The front page (day / week / month) and the paper page."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paperfeed import papers
from paperfeed.sources import InvalidArxivId, parse_arxiv_id
from paperfeed.web.deps import ReadConn, render

router = APIRouter()
# The paper page's path converter matches old-style ids with a slash (hep-th/9901001), so it
# would shadow every /papers/<word> route: app.py includes this router last.
paper_router = APIRouter()

NEW_WINDOW = dt.timedelta(hours=24)  # "new" marker: featured within the last 24 hours


@router.get("/", include_in_schema=False)
def home() -> Response:
    return RedirectResponse("/papers", status_code=307)


def _listing(request: Request, conn: ReadConn, period: papers.Period) -> HTMLResponse:
    items = papers.featured_in(conn, period, limit=500)
    prev, nxt = papers.neighbours(conn, period)
    new_since = (dt.datetime.now(dt.UTC) - NEW_WINDOW).date()
    return render(
        request,
        "listing.html",
        {"period": period, "papers": items, "prev": prev, "next": nxt, "new_since": new_since},
    )


@router.get("/papers", response_class=HTMLResponse, include_in_schema=False)
def front_page(request: Request, conn: ReadConn) -> HTMLResponse:
    """The latest featured day."""
    latest = papers.latest_featured_date(conn) or dt.date.today()
    return _listing(request, conn, papers.Period.containing("date", latest))


@router.get("/papers/{kind}/{slug}", response_class=HTMLResponse, include_in_schema=False)
def period_page(request: Request, conn: ReadConn, kind: str, slug: str) -> HTMLResponse:
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
    return _listing(request, conn, period)


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
    return render(request, "paper.html", {"paper": paper, "bibtex": papers.bibtex(paper)})
