"""Collections (named public/private lists of papers) and follows of authors and categories."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from paperfeed.accounts import CurrentUser, users_t
from paperfeed.models import Collection, CollectionItem, Follow, table_of, utcnow
from paperfeed.papers import name_key, papers_t
from paperfeed.permissions import Invalid, NotFound

collections_t = table_of(Collection)
items_t = table_of(CollectionItem)
follows_t = table_of(Follow)

MAX_NAME = 100  # characters in a collection name
MAX_DESCRIPTION = 2000
MAX_COLLECTIONS = 200  # per user
MAX_ITEMS = 5000  # papers per collection
MAX_FOLLOWS = 500  # per user
CATEGORY_RE = re.compile(r"^[a-z][a-z\-]*(?:\.[A-Za-z\-]{2,})?$")  # cs.CL, hep-th, math.AG


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def slugify(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:80] or "collection"


def _clean(name: str, description: str) -> tuple[str, str]:
    name = " ".join((name or "").split())
    description = (description or "").replace("\x00", "").strip()
    if not name:
        raise Invalid("Give the collection a name.")
    if len(name) > MAX_NAME:
        raise Invalid(f"Collection names have at most {MAX_NAME} characters.")
    if len(description) > MAX_DESCRIPTION:
        raise Invalid(f"Descriptions have at most {MAX_DESCRIPTION} characters.")
    return name, description


def create(
    conn: Connection, user: CurrentUser, name: str, description: str = "", is_public: bool = False
) -> int:
    """A new collection owned by the user; returns its id."""
    name, description = _clean(name, description)
    mine = conn.execute(
        select(func.count()).select_from(collections_t).where(collections_t.c.user_id == user.id)
    ).scalar_one()
    if mine >= MAX_COLLECTIONS:
        raise Invalid(f"At most {MAX_COLLECTIONS} collections per user.")
    base = slugify(name)
    taken = set(
        conn.execute(
            select(collections_t.c.slug).where(
                collections_t.c.user_id == user.id, collections_t.c.slug.like(f"{base}%")
            )
        ).scalars()
    )
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return int(
        conn.execute(
            insert(collections_t)
            .values(
                user_id=user.id,
                name=name,
                slug=slug,
                description=description,
                is_public=is_public,
                created_at=utcnow(),
            )
            .returning(collections_t.c.id)
        ).scalar_one()
    )


def get(conn: Connection, collection_id: int, viewer: CurrentUser | None) -> Row[Any]:
    """A collection the viewer may see (public, or their own); private ones look missing."""
    row = conn.execute(
        select(collections_t, users_t.c.username)
        .join(users_t, users_t.c.id == collections_t.c.user_id)
        .where(collections_t.c.id == collection_id)
    ).first()
    if row is None or not (row.is_public or (viewer is not None and viewer.id == row.user_id)):
        raise NotFound("No such collection.")
    return row


def owned(conn: Connection, collection_id: int, user: CurrentUser) -> Row[Any]:
    """A collection the user owns; anyone else's answers as missing (no IDOR, no probing)."""
    row = conn.execute(
        select(collections_t).where(
            collections_t.c.id == collection_id, collections_t.c.user_id == user.id
        )
    ).first()
    if row is None:
        raise NotFound("No such collection.")
    return row


def update_collection(
    conn: Connection,
    user: CurrentUser,
    collection_id: int,
    name: str,
    description: str,
    is_public: bool,
) -> None:
    owned(conn, collection_id, user)
    name, description = _clean(name, description)
    conn.execute(
        update(collections_t)
        .where(collections_t.c.id == collection_id)
        .values(name=name, description=description, is_public=is_public)
    )


def remove_collection(conn: Connection, user: CurrentUser, collection_id: int) -> None:
    owned(conn, collection_id, user)
    conn.execute(delete(items_t).where(items_t.c.collection_id == collection_id))
    conn.execute(delete(collections_t).where(collections_t.c.id == collection_id))


def add_paper(conn: Connection, user: CurrentUser, collection_id: int, paper_id: int) -> bool:
    """Add a paper (idempotent); True if it was not there yet."""
    owned(conn, collection_id, user)
    if size(conn, collection_id) >= MAX_ITEMS:
        raise Invalid(f"A collection holds at most {MAX_ITEMS} papers.")
    stmt = _insert(conn)(items_t).values(
        collection_id=collection_id, paper_id=paper_id, added_at=utcnow()
    )
    return bool(conn.execute(stmt.on_conflict_do_nothing()).rowcount == 1)


def remove_paper(conn: Connection, user: CurrentUser, collection_id: int, paper_id: int) -> bool:
    owned(conn, collection_id, user)
    return bool(
        conn.execute(
            delete(items_t).where(
                items_t.c.collection_id == collection_id, items_t.c.paper_id == paper_id
            )
        ).rowcount
        == 1
    )


def size(conn: Connection, collection_id: int) -> int:
    """How many papers a collection holds (hidden ones included)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(items_t)
            .where(items_t.c.collection_id == collection_id)
        ).scalar_one()
    )


def papers_in(
    conn: Connection, collection_id: int, after: int = 0, limit: int = MAX_ITEMS
) -> list[Row[Any]]:
    """Visible papers of a collection in the order they were added (cursor: paper id order)."""
    return list(
        conn.execute(
            select(papers_t)
            .join(items_t, items_t.c.paper_id == papers_t.c.id)
            .where(
                items_t.c.collection_id == collection_id,
                papers_t.c.hidden.is_(False),
                papers_t.c.id > after,
            )
            .order_by(papers_t.c.id)
            .limit(limit)
        )
    )


def of_user(
    conn: Connection, user_id: int, *, public_only: bool, after: int = 0, limit: int = 500
) -> list[Row[Any]]:
    """A user's collections with their sizes, oldest first."""
    size = (
        select(func.count())
        .select_from(items_t)
        .where(items_t.c.collection_id == collections_t.c.id)
        .scalar_subquery()
    )
    query = select(collections_t, size.label("size")).where(
        collections_t.c.user_id == user_id, collections_t.c.id > after
    )
    if public_only:
        query = query.where(collections_t.c.is_public.is_(True))
    return list(conn.execute(query.order_by(collections_t.c.id).limit(limit)))


def containing(conn: Connection, user_id: int, paper_ids: Iterable[int]) -> dict[int, set[int]]:
    """{paper id: ids of the user's collections holding it}."""
    ids = list(paper_ids)
    found: dict[int, set[int]] = {}
    if not ids:
        return found
    for paper_id, coll_id in conn.execute(
        select(items_t.c.paper_id, items_t.c.collection_id)
        .join(collections_t, collections_t.c.id == items_t.c.collection_id)
        .where(collections_t.c.user_id == user_id, items_t.c.paper_id.in_(ids))
    ):
        found.setdefault(paper_id, set()).add(coll_id)
    return found


# ---- Follows -----------------------------------------------------------------------------


def follow_value(kind: str, value: str) -> str:
    """The stored form of a follow: author name keys, category codes as arXiv writes them."""
    value = " ".join((value or "").split())
    if kind == "author":
        key = name_key(value)
        if not key or len(key) > 300:
            raise Invalid("Give an author name of 1-300 characters.")
        return key
    if kind == "category":
        if not CATEGORY_RE.match(value) or len(value) > 32:
            raise Invalid(f"{value[:40]!r} is not an arXiv category like cs.CL or hep-th.")
        return value
    raise Invalid("You can follow an 'author' or a 'category'.")


def follow(conn: Connection, user: CurrentUser, kind: str, value: str) -> bool:
    """Follow an author or category (idempotent); True if new."""
    value = follow_value(kind, value)
    count = conn.execute(
        select(func.count()).select_from(follows_t).where(follows_t.c.user_id == user.id)
    ).scalar_one()
    if count >= MAX_FOLLOWS:
        raise Invalid(f"At most {MAX_FOLLOWS} follows per user.")
    stmt = _insert(conn)(follows_t).values(
        user_id=user.id, kind=kind, value=value, created_at=utcnow()
    )
    return bool(conn.execute(stmt.on_conflict_do_nothing()).rowcount == 1)


def unfollow(conn: Connection, user: CurrentUser, kind: str, value: str) -> bool:
    value = follow_value(kind, value)
    return bool(
        conn.execute(
            delete(follows_t).where(
                follows_t.c.user_id == user.id, follows_t.c.kind == kind, follows_t.c.value == value
            )
        ).rowcount
        == 1
    )


def follows_of(conn: Connection, user_id: int) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(follows_t.c.kind, follows_t.c.value, follows_t.c.created_at)
            .where(follows_t.c.user_id == user_id)
            .order_by(follows_t.c.kind, follows_t.c.value)
        )
    )
