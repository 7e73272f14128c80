"""Hugging Face papers API compatibility: the same paths, parameters and item shape
(https://huggingface.co/api/daily_papers, recorded in shared/data/fixtures/hf_daily_papers), so
existing HF clients can point at a paperfeed instance.

Fields HF fills from its own hub (object ids, avatars, discussion ids) are derived
deterministically from our data; fields HF omits when it has no value (projectPage, githubRepo,
organization, mediaUrls, ai_*) are omitted here too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from paperfeed import listing, papers, search
from paperfeed.api.common import ERRORS, cached
from paperfeed.config import Settings
from paperfeed.web.conditional import conditional
from paperfeed.web.deps import ReadConn, SettingsDep

router = APIRouter(prefix="/api", tags=["Hugging Face compatible"])

HF_MAX_LIMIT = 100  # HF caps a daily_papers page at 100 items
HF_DEFAULT_LIMIT = 50


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class HfAuthor(_Model):
    id_: str = Field(alias="_id")
    name: str
    hidden: bool


class HfDailyUser(_Model):
    """paper.submittedOnDailyBy."""

    id_: str = Field(alias="_id")
    avatarUrl: str
    isPro: bool
    fullname: str
    user: str
    type: str
    name: str


class HfSubmitter(_Model):
    """item.submittedBy."""

    id_: str = Field(alias="_id")
    avatarUrl: str
    fullname: str
    name: str
    type: str
    isPro: bool
    isHf: bool
    isHfAdmin: bool
    isMod: bool
    followerCount: int
    isUserFollowing: bool


class HfOrganization(_Model):
    id_: str = Field(alias="_id")
    name: str
    fullname: str
    avatar: str


class HfPaper(_Model):
    id: str
    authors: list[HfAuthor]
    publishedAt: str
    submittedOnDailyAt: str | None = None
    title: str
    submittedOnDailyBy: HfDailyUser | None = None
    summary: str
    upvotes: int
    discussionId: str
    projectPage: str | None = None
    githubRepo: str | None = None
    githubRepoAddedBy: str | None = None
    ai_summary: str | None = None
    ai_keywords: list[str] | None = None
    ai_summary_model: str | None = None
    githubStars: int | None = None
    organization: HfOrganization | None = None
    mediaUrls: list[str] | None = None


class HfDailyItem(_Model):
    paper: HfPaper
    publishedAt: str
    title: str
    summary: str
    thumbnail: str
    numComments: int
    submittedBy: HfSubmitter | None = None
    organization: HfOrganization | None = None
    isAuthorParticipating: bool
    mediaUrls: list[str] | None = None


def object_id(*parts: str) -> str:
    """A stable 24-hex id in the shape of HF's (MongoDB) ids, derived from our own keys."""
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:24]  # noqa: S324 - not security


def _iso(day: dt.date | dt.datetime | None) -> str:
    """HF's timestamp format: '2026-08-20T00:00:00.000Z'."""
    if day is None:
        return "1970-01-01T00:00:00.000Z"
    if not isinstance(day, dt.datetime):
        day = dt.datetime(day.year, day.month, day.day)
    return day.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _organization(value: Any) -> HfOrganization | None:
    if isinstance(value, dict) and value.get("name"):
        name = str(value["name"])
        return HfOrganization(
            _id=str(value.get("_id") or object_id("org", name)),
            name=name,
            fullname=str(value.get("fullname") or name),
            avatar=str(value.get("avatar") or ""),
        )
    if isinstance(value, str) and value:
        return HfOrganization(_id=object_id("org", value), name=value, fullname=value, avatar="")
    return None


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def hf_paper(row: Any, submitter: str | None) -> HfPaper:
    """A papers row in HF's `paper` shape (also the body of /api/papers/{id})."""
    extra = row.extra or {}
    code_added_by = extra.get("github_repo_added_by") or (
        "author" if extra.get("code_url_from") == "text" else "user"
    )
    return HfPaper(
        id=row.arxiv_id,
        authors=[
            HfAuthor(_id=object_id(row.arxiv_id, str(i)), name=name, hidden=False)
            for i, name in enumerate(row.authors or [])
        ],
        publishedAt=_iso(row.published or row.featured_date or row.created_at),
        submittedOnDailyAt=_iso(row.featured_date) if row.featured_date else None,
        title=row.title,
        submittedOnDailyBy=HfDailyUser(
            _id=object_id("user", submitter),
            avatarUrl="",
            isPro=False,
            fullname=submitter,
            user=submitter,
            type="user",
            name=submitter,
        )
        if submitter
        else None,
        summary=row.abstract or "",
        upvotes=row.upvotes or 0,
        discussionId=object_id("discussion", row.arxiv_id),
        projectPage=row.project_page or None,
        githubRepo=row.code_url or None,
        githubRepoAddedBy=str(code_added_by) if row.code_url else None,
        ai_summary=extra.get("ai_summary") if isinstance(extra.get("ai_summary"), str) else None,
        ai_keywords=_strings(extra.get("ai_keywords")),
        ai_summary_model=extra.get("ai_summary_model")
        if isinstance(extra.get("ai_summary_model"), str)
        else None,
        githubStars=(row.code_stars or 0) if row.code_url else None,
        organization=_organization(extra.get("organization")),
        mediaUrls=_strings(extra.get("media_urls")),
    )


def hf_item(row: Any, submitter: str | None) -> HfDailyItem:
    """A papers row in HF's daily_papers item shape."""
    paper = hf_paper(row, submitter)
    extra = row.extra or {}
    return HfDailyItem(
        paper=paper,
        publishedAt=_iso(row.featured_date or row.published or row.created_at),
        title=row.title,
        summary=row.abstract or "",
        thumbnail=str(extra.get("thumbnail") or ""),
        numComments=row.num_comments or 0,
        submittedBy=HfSubmitter(
            _id=object_id("user", submitter),
            avatarUrl="",
            fullname=submitter,
            name=submitter,
            type="user",
            isPro=False,
            isHf=False,
            isHfAdmin=False,
            isMod=False,
            followerCount=0,
            isUserFollowing=False,
        )
        if submitter
        else None,
        organization=paper.organization,
        isAuthorParticipating=False,
        mediaUrls=paper.mediaUrls,
    )


def hf_items(conn: Any, rows: list[Any]) -> list[HfDailyItem]:
    names = listing.submitter_names(conn, rows)
    return [hf_item(r, names.get(r.id)) for r in rows]


_WEEK = re.compile(r"^\d{4}-W\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def period_param(conn: Any, date: str | None, week: str | None, month: str | None) -> papers.Period:
    given = [(k, v) for k, v in (("date", date), ("week", week), ("month", month)) if v]
    if len(given) > 1:
        raise HTTPException(400, "Give at most one of date, week, month.")
    if not given:
        return listing.latest_period(conn)
    kind, value = given[0]
    examples = {"date": "2024-05-27", "week": "2024-W22", "month": "2024-05"}
    pattern_ok = (
        (kind == "date" and len(value) == 10)
        or (kind == "week" and _WEEK.match(value))
        or (kind == "month" and _MONTH.match(value))
    )
    try:
        if not pattern_ok:
            raise ValueError(value)
        return papers.Period.parse(kind, value)
    except ValueError as exc:
        raise HTTPException(400, f"{kind}={value!r} is invalid; e.g. {examples[kind]}") from exc


ITEMS = TypeAdapter(list[HfDailyItem])
SORT_MAP = {None: "upvotes", "publishedAt": "published", "trending": "trending"}


@router.get(
    "/daily_papers",
    response_model=list[HfDailyItem],
    response_model_exclude_none=True,
    responses=ERRORS,
    summary="Daily papers (Hugging Face compatible)",
)
def daily_papers(
    request: Request,
    conn: ReadConn,
    settings: SettingsDep,
    date: Annotated[str | None, Query(description="A featured day, YYYY-MM-DD.")] = None,
    week: Annotated[str | None, Query(description="An ISO week, YYYY-Www.")] = None,
    month: Annotated[str | None, Query(description="A month, YYYY-MM.")] = None,
    sort: Annotated[
        Literal["publishedAt", "trending"] | None,
        Query(description="Default: most upvoted first."),
    ] = None,
    p: Annotated[int, Query(ge=0, le=10_000, description="Page number, from 0.")] = 0,
    limit: Annotated[int, Query(ge=1, le=HF_MAX_LIMIT)] = HF_DEFAULT_LIMIT,
) -> Any:
    """Papers featured on a day, ISO week or month (default: the latest featured day)."""
    period = period_param(conn, date, week, month)

    def build() -> bytes:
        rows = listing.period_offset(
            conn, period, sort=SORT_MAP[sort], limit=limit, offset=p * limit
        )
        return ITEMS.dump_json(hf_items(conn, rows), by_alias=True, exclude_none=True)

    body = cached(request, conn, settings, build)
    return conditional(request, body, "application/json", max_age=int(settings.trending_cache_s))


@router.get(
    "/papers/search",
    response_model=list[HfDailyItem],
    response_model_exclude_none=True,
    responses=ERRORS,
    summary="Search papers (Hugging Face compatible)",
)
def search_papers(
    conn: ReadConn,
    settings: SettingsDep,
    q: Annotated[str, Query(max_length=500, description="Words, an arXiv id or filters.")],
    limit: Annotated[int, Query(ge=1, le=HF_MAX_LIMIT)] = 20,
) -> Any:
    """Papers matching a query, best first, in the daily_papers item shape."""
    rows = search_rows(conn, settings, q, limit)
    return hf_items(conn, rows)


def search_rows(conn: Any, settings: Settings, q: str, limit: int) -> list[Any]:
    """The catalog's hybrid search, as paper rows in rank order."""
    page = search.search(conn, settings, q, limit=limit)
    return listing.by_arxiv_ids(conn, [h.arxiv_id for h in page.hits])


@router.get(
    "/papers/{arxiv_id:path}",
    response_model=HfPaper,
    response_model_exclude_none=True,
    responses=ERRORS,
    summary="One paper (Hugging Face compatible)",
)
def get_paper(conn: ReadConn, arxiv_id: str) -> Any:
    """A paper by arXiv id (any accepted form), in HF's paper shape."""
    row = papers.get_paper(conn, arxiv_id)
    if row is None:
        raise HTTPException(404, f"No paper {arxiv_id[:80]!r} in this catalog.")
    return hf_paper(row, listing.submitter_names(conn, [row]).get(row.id))
