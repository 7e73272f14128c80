"""Paper listings for the API, feeds and exports: filtered, keyset-paginated, plus the author,
public-collection and follow lookups that feeds and OPML need."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, literal, select, tuple_

from paperfeed import ranking
from paperfeed.models import (
    Collection,
    CollectionItem,
    Follow,
    Paper,
    PaperAuthor,
    PaperCategory,
    User,
    table_of,
)
from paperfeed.papers import Period, name_key

papers_t = table_of(Paper)
authors_t = table_of(PaperAuthor)
categories_t = table_of(PaperCategory)
users_t = table_of(User)
collections_t = table_of(Collection)
items_t = table_of(CollectionItem)
follows_t = table_of(Follow)

SORTS = ("upvotes", "published", "trending")
_NO_DATE = dt.date(1, 1, 1)  # sorts undated papers last under sort=published


def _sort_columns(sort: str, narrowed: bool = False) -> tuple[Any, Any]:
    """The keyset (sort key, tie-break) of a sort. `narrowed`: a featured-period filter
    applies, whose index beats walking a sort index (see ranking.trending)."""
    if sort == "upvotes":
        return papers_t.c.upvotes, papers_t.c.arxiv_id
    if sort == "published":
        return func.coalesce(papers_t.c.published, literal(_NO_DATE)), papers_t.c.arxiv_id
    if sort == "trending":
        return (papers_t.c.hotness + 0 if narrowed else papers_t.c.hotness), papers_t.c.arxiv_id
    raise ValueError(f"sort must be one of {', '.join(SORTS)}")


def _key_of(sort: str, row: Any) -> list[Any]:
    if sort == "upvotes":
        return [row.upvotes, row.arxiv_id]
    if sort == "published":
        return [(row.published or _NO_DATE).isoformat(), row.arxiv_id]
    return [repr(row.hotness), row.arxiv_id]


def _parse_key(sort: str, key: list[Any]) -> tuple[Any, str]:
    try:
        first, arxiv_id = key[0], str(key[1])
        if sort == "upvotes":
            return int(first), arxiv_id
        if sort == "published":
            return dt.date.fromisoformat(str(first)), arxiv_id
        return float(first), arxiv_id
    except (IndexError, TypeError, ValueError) as exc:
        raise ranking.BadCursor("malformed cursor") from exc


def _finish(rows: list[Any], sort: str, kind: str, limit: int) -> tuple[list[Any], str | None]:
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, ranking.encode_cursor(kind, _key_of(sort, rows[-1]))


def _visible() -> Any:
    return papers_t.c.hidden.is_(False)


def paper_listing(
    conn: Connection,
    *,
    period: Period | None = None,
    category: str | None = None,
    sort: str = "upvotes",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Any], str | None]:
    """Visible papers (featured in `period` if given; in `category` if given), one page."""
    query = select(papers_t).where(_visible())
    if period is not None:
        query = query.where(papers_t.c.featured_date.between(period.start, period.end))
    if category:
        query = query.where(
            papers_t.c.id.in_(
                select(categories_t.c.paper_id).where(categories_t.c.category == category)
            )
        )
    return run_page(conn, query, sort, "papers", limit, cursor, narrowed=period is not None)


def run_page(
    conn: Connection,
    query: Select[Any],
    sort: str,
    kind: str,
    limit: int,
    cursor: str | None,
    *,
    narrowed: bool = False,
) -> tuple[list[Any], str | None]:
    """One keyset page of `query` under `sort` (see SORTS); BadCursor for a foreign cursor."""
    first, second = _sort_columns(sort, narrowed)
    kind = f"{kind}:{sort}"
    if cursor:
        query = query.where(
            tuple_(first, second) < _parse_key(sort, ranking.decode_cursor(kind, cursor))
        )
    rows = list(conn.execute(query.order_by(first.desc(), second.desc()).limit(limit + 1)))
    return _finish(rows, sort, kind, limit)


def period_offset(
    conn: Connection, period: Period, *, sort: str, limit: int, offset: int
) -> list[Any]:
    """Featured papers of a period, offset-paginated (the Hugging Face API's `p`/`limit`)."""
    first, second = _sort_columns(sort, narrowed=True)
    # Rank narrow rows (index-only where an index covers the sort), then fetch full rows.
    ids = list(
        conn.execute(
            select(papers_t.c.id)
            .where(_visible(), papers_t.c.featured_date.between(period.start, period.end))
            .order_by(first.desc(), second.desc())
            .limit(limit)
            .offset(offset)
        ).scalars()
    )
    by_id = {r.id: r for r in conn.execute(select(papers_t).where(papers_t.c.id.in_(ids)))}
    return [by_id[i] for i in ids]


def submitter_names(conn: Connection, rows: list[Any]) -> dict[int, str]:
    """Who put each paper on the front page: the source's name, else the local username."""
    names = {r.id: r.submitted_by_name for r in rows if r.submitted_by_name}
    local = {r.submitted_by_id for r in rows if r.submitted_by_id and r.id not in names}
    if local:
        usernames = dict(
            conn.execute(
                select(users_t.c.id, users_t.c.username).where(users_t.c.id.in_(local))
            ).all()
        )
        for r in rows:
            if r.id not in names and r.submitted_by_id in usernames:
                names[r.id] = usernames[r.submitted_by_id]
    return names


def latest_period(conn: Connection) -> Period:
    """The latest featured day (today when nothing is featured yet)."""
    latest = conn.execute(
        select(func.max(papers_t.c.featured_date)).where(
            _visible(),
            papers_t.c.featured_date.is_not(None),  # the partial index's condition
        )
    ).scalar()
    return Period.containing("date", latest or dt.date.today())


def catalog_version(conn: Connection) -> str:
    """Changes whenever a paper is written: for ETags and response caches."""
    # Two index lookups in one statement (no count(*): that scans the table). Deletions are
    # caught by the TTL.
    stamp, last_id = conn.execute(
        select(
            select(func.max(papers_t.c.modified_at)).scalar_subquery(),
            select(func.max(papers_t.c.id)).scalar_subquery(),
        )
    ).one()
    return f"{stamp.isoformat() if stamp else '-'}/{last_id}"


def by_arxiv_ids(conn: Connection, arxiv_ids: list[str]) -> list[Any]:
    """Visible papers in the order of the given ids (unknown ids skipped)."""
    if not arxiv_ids:
        return []
    found = {
        r.arxiv_id: r
        for r in conn.execute(
            select(papers_t).where(papers_t.c.arxiv_id.in_(arxiv_ids), _visible())
        )
    }
    return [found[a] for a in arxiv_ids if a in found]


def author_name(conn: Connection, name: str) -> tuple[str, str] | None:
    """(name_key, most common spelling) for an author name in any case/accents; None if none."""
    key = name_key(name)
    row = conn.execute(
        select(authors_t.c.name, func.count().label("n"))
        .where(authors_t.c.name_key == key)
        .group_by(authors_t.c.name)
        .order_by(func.count().desc(), authors_t.c.name)
        .limit(1)
    ).first()
    return (key, row.name) if row else None


def author_papers(
    conn: Connection, key: str, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Any], str | None]:
    """An author's visible papers, newest first."""
    query = select(papers_t).where(
        _visible(),
        papers_t.c.id.in_(select(authors_t.c.paper_id).where(authors_t.c.name_key == key)),
    )
    return run_page(conn, query, "published", "author", limit, cursor)


# ---- Public collections and follows (read side; the community module owns the writes) --------


@dataclass(frozen=True)
class CollectionInfo:
    id: int
    owner: str
    slug: str
    name: str
    description: str
    modified: dt.datetime | None

    @property
    def path(self) -> str:
        return f"/collections/{self.owner}/{self.slug}"


def public_collection(conn: Connection, owner: str, slug: str) -> CollectionInfo | None:
    """A public collection by its owner's username and slug; None if missing or private."""
    row = conn.execute(
        select(
            collections_t.c.id,
            collections_t.c.slug,
            collections_t.c.name,
            collections_t.c.description,
            collections_t.c.created_at,
            users_t.c.username,
        )
        .join(users_t, users_t.c.id == collections_t.c.user_id)
        .where(
            users_t.c.username == owner,
            collections_t.c.slug == slug,
            collections_t.c.is_public.is_(True),
        )
    ).first()
    if row is None:
        return None
    latest = conn.execute(
        select(func.max(items_t.c.added_at)).where(items_t.c.collection_id == row.id)
    ).scalar()
    return CollectionInfo(
        row.id, row.username, row.slug, row.name, row.description or "", latest or row.created_at
    )


def collection_papers(conn: Connection, collection_id: int, *, limit: int = 100) -> list[Any]:
    """A collection's visible papers, most recently added first."""
    return list(
        conn.execute(
            select(papers_t)
            .join(items_t, items_t.c.paper_id == papers_t.c.id)
            .where(items_t.c.collection_id == collection_id, _visible())
            .order_by(items_t.c.added_at.desc(), papers_t.c.arxiv_id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class UserFeeds:
    username: str
    authors: list[tuple[str, str]]  # (name_key, display name)
    categories: list[str]
    collections: list[CollectionInfo]


def user_feeds(conn: Connection, username: str) -> UserFeeds | None:
    """What a user follows (authors, categories) and their public collections; None if no user."""
    uid = conn.execute(select(users_t.c.id).where(users_t.c.username == username)).scalar()
    if uid is None:
        return None
    follows = conn.execute(
        select(follows_t.c.kind, follows_t.c.value)
        .where(follows_t.c.user_id == uid)
        .order_by(follows_t.c.kind, follows_t.c.value)
    ).all()
    authors = []
    for f in follows:
        if f.kind == "author":
            found = author_name(conn, f.value)
            authors.append((name_key(f.value), found[1] if found else f.value))
    cols = conn.execute(
        select(collections_t.c.slug)
        .where(collections_t.c.user_id == uid, collections_t.c.is_public.is_(True))
        .order_by(collections_t.c.slug)
    ).scalars()
    collections = [c for c in (public_collection(conn, username, s) for s in cols) if c]
    return UserFeeds(
        username=username,
        authors=authors,
        categories=[f.value for f in follows if f.kind == "category"],
        collections=collections,
    )
