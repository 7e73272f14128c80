"""Trending and author pages, and the feed / BibTeX / OPML exports of every listing.

Every listing has `<listing>/feed.atom`, `<listing>/feed.rss` and `<listing>/feed.bib`; the HTML
pages here also take `?format=atom|rss|bibtex`. Exports answer conditional GETs (ETag,
Last-Modified).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from paperfeed import feeds, listing, papers, ranking
from paperfeed.api.common import cached
from paperfeed.api.hf import search_rows
from paperfeed.config import Settings
from paperfeed.models import utcnow
from paperfeed.web import cards
from paperfeed.web.conditional import conditional
from paperfeed.web.deps import ReadConn, SettingsDep, render

router = APIRouter(include_in_schema=False)

FEED_LIMIT = 100  # entries per feed: a day's papers fit; readers poll, they do not page
PAGE_LIMIT = 50  # cards per HTML page
EXT = {"atom": "atom", "rss": "rss", "bib": "bibtex"}
Ext = Literal["atom", "rss", "bib"]
Format = Annotated[
    Literal["html", "atom", "rss", "bibtex"], Query(description="html (default) or an export")
]


def _abs(settings: Settings, path: str) -> str:
    return settings.base_url.rstrip("/") + path


def export(
    request: Request,
    settings: Settings,
    fmt: str,
    rows: list[Any],
    *,
    title: str,
    page_path: str,
    description: str,
) -> Response:
    """One listing as Atom, RSS or BibTeX, with conditional GET."""
    query = f"?{request.url.query}" if request.url.query else ""
    info = feeds.FeedInfo(
        title=f"{title} · {settings.site_name}",
        page_url=_abs(settings, page_path),
        self_url=_abs(settings, request.url.path) + query,
        description=description,
    )
    if fmt == "atom":
        body = feeds.atom(info, rows, settings.base_url, settings.site_name)
    elif fmt == "rss":
        body = feeds.rss(info, rows, settings.base_url, settings.site_name)
    else:
        body = feeds.bibtex_listing(rows)
    return conditional(
        request,
        body,
        feeds.FORMATS[fmt],
        modified=feeds.last_modified(info, rows),
        max_age=int(settings.trending_cache_s),
    )


def feed_links(path: str, title: str) -> list[dict[str, str]]:
    """<link rel="alternate"> entries for a listing page's <head>."""
    return [
        {"type": "application/atom+xml", "title": f"{title} (Atom)", "href": f"{path}/feed.atom"},
        {"type": "application/rss+xml", "title": f"{title} (RSS)", "href": f"{path}/feed.rss"},
    ]


# ---- Trending ------------------------------------------------------------------------------


Window = Annotated[
    Literal["day", "week", "month", "all"], Query(description="day, week, month or all")
]


def _trending_rows(
    request: Request,
    conn: ReadConn,
    settings: Settings,
    window: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    def build() -> tuple[list[Any], str | None]:
        try:
            return ranking.trending(conn, window, limit=limit, cursor=cursor)
        except ranking.BadCursor as exc:
            raise HTTPException(400, str(exc)) from exc

    return cached(request, conn, settings, build)


@router.get("/papers/trending")
def trending_page(
    request: Request,
    conn: ReadConn,
    settings: SettingsDep,
    window: Window = "week",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    format: Format = "html",
) -> Response:
    """Trending papers, each card with the breakdown of its score."""
    limit = FEED_LIMIT if format != "html" else PAGE_LIMIT
    rows, nxt = _trending_rows(request, conn, settings, window, limit, cursor)
    label = ranking.WINDOW_LABELS[window]
    if format != "html":
        return export(
            request,
            settings,
            format,
            rows,
            title=f"Trending papers — {label.lower()}",
            page_path=f"/papers/trending?window={window}",
            description=f"Papers ranked by votes, discussion and code popularity, {label}.",
        )

    def parts(subset: Sequence[Any]) -> dict[int, cards.CardParts]:
        weights, now = ranking.active_weights(conn), utcnow()
        whys = {r.id: _why(ranking.breakdown_for(r, weights), now) for r in subset}
        return cards.card_parts(request, conn, subset, whys=whys, weights=weights)

    return render(
        request,
        "trending.html",
        {
            "papers": rows,
            "rows_cached": True,  # the viewer's live upvote counts are loaded for them
            # The shared HTML of the cards is cached; each viewer's vote state is not.
            "parts": cards.cached_card_parts(request, conn, settings, rows, parts),
            "has_items": bool(rows),
            "window": window,
            "windows": ranking.WINDOW_LABELS,
            "next_cursor": nxt,
            "feed_links": feed_links("/papers/trending", "Trending papers")
            if window == "week"
            else [
                {**f, "href": f["href"] + f"?window={window}"}
                for f in feed_links("/papers/trending", f"Trending papers, {label}")
            ],
        },
    )


def _why(b: ranking.Breakdown, now: dt.datetime) -> dict[str, float]:
    return {
        "votes": b.votes,
        "comments": b.comments,
        "code": b.code,
        "age": b.age_penalty(now),
        "score": b.score_at(now),
        "hotness": b.hotness,
    }


@router.get("/papers/trending/feed.{ext}")
def trending_feed(
    request: Request, conn: ReadConn, settings: SettingsDep, ext: Ext, window: Window = "week"
) -> Response:
    return trending_page(request, conn, settings, window, None, EXT[ext])  # type: ignore[arg-type]


# ---- The front page (latest day, a day/week/month) and search ------------------------------


@router.get("/papers/feed.{ext}")
def daily_feed(
    request: Request,
    conn: ReadConn,
    settings: SettingsDep,
    ext: Ext,
    q: Annotated[str | None, Query(max_length=500, description="a search query")] = None,
) -> Response:
    """The latest featured day, or with ?q= the results of that search."""
    if q:
        rows = search_rows(conn, settings, q, FEED_LIMIT)
        return export(
            request,
            settings,
            EXT[ext],
            rows,
            title=f"Search: {q}",
            page_path=f"/papers?q={quote(q)}",
            description=f"Papers matching {q!r}, best first.",
        )
    period = listing.latest_period(conn)
    return period_feed(request, conn, settings, period.kind, period.slug, ext)


@router.get("/papers/{kind}/{slug}/feed.{ext}")
def period_feed(
    request: Request, conn: ReadConn, settings: SettingsDep, kind: str, slug: str, ext: Ext
) -> Response:
    """A day's, week's or month's featured papers, most upvoted first; or a category's newest."""
    if kind == "category":
        rows, _ = listing.paper_listing(conn, category=slug, sort="published", limit=FEED_LIMIT)
        return export(
            request,
            settings,
            EXT[ext],
            rows,
            title=f"Papers in {slug}",
            page_path=f"/papers?q={quote('cat:' + slug)}",
            description=f"The newest papers in {slug}.",
        )
    try:
        period = papers.Period.parse(kind, slug)
    except ValueError as exc:
        raise HTTPException(404, f"No listing /papers/{kind}/{slug}") from exc
    rows, _ = listing.paper_listing(conn, period=period, sort="upvotes", limit=FEED_LIMIT)
    names = {"date": "Daily papers", "week": "Papers of week", "month": "Papers of"}
    return export(
        request,
        settings,
        EXT[ext],
        rows,
        title=f"{names[period.kind]} {period.slug}",
        page_path=period.path,
        description=f"Papers featured on {settings.site_name}, {period.slug}, most upvoted first.",
    )


# ---- Authors -------------------------------------------------------------------------------


@router.get("/authors/{name}")
def author_page(
    request: Request,
    conn: ReadConn,
    settings: SettingsDep,
    name: str,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    format: Format = "html",
) -> Response:
    """Every paper of an author (any spelling of the name with the same key), newest first."""
    found = listing.author_name(conn, name)
    if found is None:
        raise HTTPException(404, f"No papers by {name[:100]!r} in this catalog.")
    key, display = found
    limit = FEED_LIMIT if format != "html" else PAGE_LIMIT
    try:
        rows, nxt = listing.author_papers(conn, key, limit=limit, cursor=cursor)
    except ranking.BadCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    path = f"/authors/{quote(display)}"
    if format != "html":
        return export(
            request,
            settings,
            format,
            rows,
            title=f"Papers by {display}",
            page_path=path,
            description=f"Papers by {display}, newest first.",
        )
    return render(
        request,
        "author.html",
        {
            "author": display,
            "papers": rows,
            "next_cursor": nxt,
            "path": path,
            "feed_links": feed_links(path, f"Papers by {display}"),
        },
    )


@router.get("/authors/{name}/feed.{ext}")
def author_feed(
    request: Request, conn: ReadConn, settings: SettingsDep, name: str, ext: Ext
) -> Response:
    return author_page(request, conn, settings, name, None, EXT[ext])  # type: ignore[arg-type]


# ---- Public collections --------------------------------------------------------------------


@router.get("/collections/{owner}/{slug}/feed.{ext}")
def collection_feed(
    request: Request, conn: ReadConn, settings: SettingsDep, owner: str, slug: str, ext: Ext
) -> Response:
    """A public collection's papers, most recently added first (private ones are 404)."""
    info = listing.public_collection(conn, owner, slug)
    if info is None:
        raise HTTPException(404, f"No public collection {owner}/{slug}")
    rows = listing.collection_papers(conn, info.id, limit=FEED_LIMIT)
    return export(
        request,
        settings,
        EXT[ext],
        rows,
        title=f"{info.name} (collection by {info.owner})",
        page_path=info.path,
        description=info.description or f"A collection by {info.owner}.",
    )


# ---- OPML ----------------------------------------------------------------------------------


def _outline(settings: Settings, title: str, path: str, query: str = "") -> feeds.Outline:
    return feeds.Outline(
        title=title,
        xml_url=_abs(settings, f"{path}/feed.atom{query}"),
        html_url=_abs(settings, f"{path}{query}"),
    )


@router.get("/feeds.opml")
def site_opml(request: Request, settings: SettingsDep) -> Response:
    """The site's main feeds as an OPML subscription list."""
    main = [
        _outline(settings, f"{settings.site_name}: daily papers", "/papers"),
        *(
            _outline(
                settings,
                f"{settings.site_name}: trending, {label.lower()}",
                "/papers/trending",
                f"?window={w}",
            )
            for w, label in ranking.WINDOW_LABELS.items()
        ),
    ]
    body = feeds.opml(f"{settings.site_name} feeds", [(settings.site_name, main)])
    return conditional(request, body, "text/x-opml; charset=utf-8", max_age=3600)


@router.get("/users/{username}/feeds.opml")
def user_opml(request: Request, conn: ReadConn, settings: SettingsDep, username: str) -> Response:
    """A user's followed authors and categories, and their public collections, as OPML."""
    found = listing.user_feeds(conn, username)
    if found is None:
        raise HTTPException(404, f"No user {username[:40]!r}")
    authors = [
        _outline(settings, f"Papers by {display}", f"/authors/{quote(display)}")
        for _key, display in found.authors
    ]
    categories = [
        feeds.Outline(
            f"Papers in {c}",
            _abs(settings, f"/papers/category/{quote(c)}/feed.atom"),
            _abs(settings, f"/papers?q={quote('cat:' + c)}"),
        )
        for c in found.categories
    ]
    collections = [_outline(settings, c.name, c.path) for c in found.collections]
    body = feeds.opml(
        f"{username}'s feeds on {settings.site_name}",
        [("Authors", authors), ("Categories", categories), ("Collections", collections)],
        owner=username,
    )
    return conditional(request, body, "text/x-opml; charset=utf-8")
