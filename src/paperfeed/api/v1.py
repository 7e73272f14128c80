"""paperfeed's own read API (/api/v1): papers and trending with cursor pagination."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from paperfeed import listing, papers, ranking
from paperfeed.api.common import ERRORS, Page
from paperfeed.api.hf import period_param
from paperfeed.models import utcnow
from paperfeed.web.deps import ReadConn, SettingsDep

router = APIRouter(prefix="/api/v1", tags=["paperfeed"])

MAX_LIMIT = 100  # items per page
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
]


class Why(BaseModel):
    """The trending breakdown, in points (see README: Trending, feeds and API)."""

    votes: float
    comments: float
    code: float
    age_penalty: float
    score: float  # votes + comments + code - age_penalty, at response time
    hotness: float  # the stored, clock-free score the listing is ordered by


class PaperOut(BaseModel):
    arxiv_id: str
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]
    primary_category: str | None
    published: dt.date | None
    updated: dt.date | None
    featured_date: dt.date | None
    version: int
    upvotes: int
    num_comments: int
    code_url: str | None
    code_stars: int | None
    project_page: str | None
    doi: str | None
    journal_ref: str | None
    comments: str | None
    license: str | None
    url: str
    arxiv_url: str
    pdf_url: str


class TrendingPaperOut(PaperOut):
    why: Why


def paper_out(row: Any, base_url: str) -> PaperOut:
    return PaperOut(
        arxiv_id=row.arxiv_id,
        title=row.title,
        abstract=row.abstract or "",
        authors=list(row.authors or []),
        categories=list(row.categories or []),
        primary_category=row.primary_category,
        published=row.published,
        updated=row.updated,
        featured_date=row.featured_date,
        version=row.version or 0,
        upvotes=row.upvotes or 0,
        num_comments=row.num_comments or 0,
        code_url=row.code_url,
        code_stars=row.code_stars,
        project_page=row.project_page,
        doi=row.doi,
        journal_ref=row.journal_ref,
        comments=row.comments,
        license=row.license,
        url=f"{base_url.rstrip('/')}/papers/{row.arxiv_id}",
        arxiv_url=f"https://arxiv.org/abs/{row.arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{row.arxiv_id}",
    )


def why_out(b: ranking.Breakdown, now: dt.datetime) -> Why:
    return Why(
        votes=round(b.votes, 4),
        comments=round(b.comments, 4),
        code=round(b.code, 4),
        age_penalty=round(b.age_penalty(now), 4),
        score=round(b.score_at(now), 4),
        hotness=b.hotness,
    )


@router.get("/papers", response_model=Page[PaperOut], responses=ERRORS)
def list_papers(
    conn: ReadConn,
    settings: SettingsDep,
    date: Annotated[str | None, Query(description="Featured on this day, YYYY-MM-DD.")] = None,
    week: Annotated[str | None, Query(description="Featured in this ISO week, YYYY-Www.")] = None,
    month: Annotated[str | None, Query(description="Featured in this month, YYYY-MM.")] = None,
    category: Annotated[str | None, Query(max_length=32, description="e.g. cs.CL")] = None,
    sort: Literal["upvotes", "published", "trending"] = "upvotes",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    """All visible papers, or those featured in a day/week/month; optionally one category."""
    period = period_param(conn, date, week, month) if (date or week or month) else None
    try:
        rows, nxt = listing.paper_listing(
            conn, period=period, category=category, sort=sort, limit=limit, cursor=cursor
        )
    except ranking.BadCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    return Page[PaperOut](items=[paper_out(r, settings.base_url) for r in rows], next_cursor=nxt)


@router.get("/papers/{arxiv_id:path}", response_model=TrendingPaperOut, responses=ERRORS)
def get_paper(conn: ReadConn, settings: SettingsDep, arxiv_id: str) -> Any:
    """One paper by arXiv id (any accepted form), with its trending breakdown."""
    row = papers.get_paper(conn, arxiv_id)
    if row is None:
        raise HTTPException(404, f"No paper {arxiv_id[:80]!r} in this catalog.")
    why = why_out(ranking.breakdown_for(row, ranking.active_weights(conn)), utcnow())
    return TrendingPaperOut(**paper_out(row, settings.base_url).model_dump(), why=why)


@router.get("/trending", response_model=Page[TrendingPaperOut], responses=ERRORS)
def trending(
    conn: ReadConn,
    settings: SettingsDep,
    window: Literal["day", "week", "month", "all"] = "week",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    """Featured papers by trending score, each with the breakdown of why it ranks there."""
    try:
        rows, nxt = ranking.trending(conn, window, limit=limit, cursor=cursor)
    except ranking.BadCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    weights, now = ranking.active_weights(conn), utcnow()
    items = [
        TrendingPaperOut(
            **paper_out(r, settings.base_url).model_dump(),
            why=why_out(ranking.breakdown_for(r, weights), now),
        )
        for r in rows
    ]
    return Page[TrendingPaperOut](items=items, next_cursor=nxt)
