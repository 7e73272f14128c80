"""Export: every user's data as one JSON-ready document keyed by natural keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select

from paperfeed.userdata.common import (
    COL,
    DP,
    FB,
    FOL,
    FORMAT,
    ITEM,
    SS,
    SUB,
    SUB_FIELDS,
    TOK,
    USER_FIELDS,
    VERSION,
    C,
    P,
    U,
    V,
    comment_key,
    iso,
    row_of,
)

# ---- Export ------------------------------------------------------------------------------


def export_all(conn: Connection, *, source: str = "") -> dict[str, Any]:
    """The whole user-data document (read it in one transaction for a consistent snapshot)."""
    arxiv_of = dict(conn.execute(select(P.c.id, P.c.arxiv_id)).all())
    name_of: dict[int, str] = {}
    users: dict[int, dict[str, Any]] = {}
    for r in conn.execute(select(U).order_by(U.c.id)):
        name_of[r.id] = r.username
        users[r.id] = {
            **row_of(r, USER_FIELDS),
            "votes": [],
            "follows": [],
            "collections": [],
            "saved_searches": [],
            "api_tokens": [],
            "submissions": [],
        }
    referenced: set[int] = set()
    for r in conn.execute(select(V).order_by(V.c.user_id, V.c.created_at, V.c.paper_id)):
        users[r.user_id]["votes"].append(
            {"arxiv_id": arxiv_of[r.paper_id], "created_at": iso(r.created_at)}
        )
        referenced.add(r.paper_id)
    for r in conn.execute(select(FOL).order_by(FOL.c.id)):
        users[r.user_id]["follows"].append(row_of(r, ("kind", "value", "created_at")))
    collections: dict[int, dict[str, Any]] = {}
    for r in conn.execute(select(COL).order_by(COL.c.id)):
        c = {**row_of(r, ("name", "slug", "description", "is_public", "created_at")), "items": []}
        collections[r.id] = c
        users[r.user_id]["collections"].append(c)
    for r in conn.execute(select(ITEM).order_by(ITEM.c.collection_id, ITEM.c.added_at)):
        collections[r.collection_id]["items"].append(
            {"arxiv_id": arxiv_of[r.paper_id], "added_at": iso(r.added_at)}
        )
        referenced.add(r.paper_id)
    for r in conn.execute(select(TOK).order_by(TOK.c.id)):
        users[r.user_id]["api_tokens"].append(
            row_of(r, ("name", "token_hash", "created_at", "last_used_at", "revoked_at"))
        )
    for r in conn.execute(
        select(P.c.id, P.c.submitted_by_id).where(P.c.submitted_by_id.is_not(None))
    ):
        users[r.submitted_by_id]["submissions"].append(arxiv_of[r.id])
        referenced.add(r.id)

    comments: list[dict[str, Any]] = []
    key_of: dict[int, str] = {}
    for r in conn.execute(select(C).order_by(C.c.created_at, C.c.id)):
        key = comment_key(name_of[r.user_id], arxiv_of[r.paper_id], iso(r.created_at))
        key_of[r.id] = key
        comments.append(
            {
                "key": key,
                "username": name_of[r.user_id],
                "arxiv_id": arxiv_of[r.paper_id],
                "parent": key_of.get(r.parent_id) if r.parent_id else None,
                **row_of(r, ("body_md", "body_html", "created_at", "edited_at", "deleted_at")),
                "hidden": r.hidden,
            }
        )
        referenced.add(r.paper_id)

    subscribers: dict[int, dict[str, Any]] = {}
    for r in conn.execute(select(SUB).order_by(SUB.c.id)):
        subscribers[r.id] = {
            **row_of(r, SUB_FIELDS),
            "username": name_of.get(r.user_id) if r.user_id else None,
            "saved_searches": [],
            "sent_papers": [],
            "feedback": [],
        }
    for r in conn.execute(select(SS).order_by(SS.c.id)):
        item = {"query": r.query, "created_at": iso(r.created_at)}
        if r.subscriber_id is not None:
            subscribers[r.subscriber_id]["saved_searches"].append(item)
        elif r.user_id is not None:
            users[r.user_id]["saved_searches"].append(item)
    for r in conn.execute(select(DP).order_by(DP.c.subscriber_id, DP.c.paper_id)):
        subscribers[r.subscriber_id]["sent_papers"].append(
            {"arxiv_id": arxiv_of[r.paper_id], "edition": r.edition}
        )
        referenced.add(r.paper_id)
    for r in conn.execute(select(FB).order_by(FB.c.subscriber_id, FB.c.paper_id)):
        subscribers[r.subscriber_id]["feedback"].append(
            {"arxiv_id": arxiv_of[r.paper_id], "signal": r.signal, "created_at": iso(r.created_at)}
        )
        referenced.add(r.paper_id)

    paper_rows: list[dict[str, Any]] = []
    ids = sorted(referenced)
    names: tuple[str, ...] = (
        "arxiv_id",
        "title",
        "abstract",
        "authors",
        "categories",
        "published",
        "version",
    )
    names += ("featured_date", "source_upvotes", "source_comments")
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(*(P.c[n] for n in names)).where(P.c.id.in_(chunk)).order_by(P.c.id)
        paper_rows.extend(row_of(r, names) for r in conn.execute(query))
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": iso(dt.datetime.now(dt.UTC).replace(tzinfo=None)),
        "source": source,
        "papers": paper_rows,
        "users": list(users.values()),
        "comments": comments,
        "subscribers": list(subscribers.values()),
    }
