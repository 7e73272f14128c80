"""Import: merge a user-data document into this instance, idempotently, by natural keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from paperfeed import papers
from paperfeed.sources import PaperRecord
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
    FormatError,
    P,
    U,
    V,
    ts,
)

# ---- Import ------------------------------------------------------------------------------


@dataclass
class ImportStats:
    """Rows created per kind (records already present are not counted) and skipped users."""

    created: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    def add(self, kind: str, n: int) -> None:
        if n:
            self.created[kind] = self.created.get(kind, 0) + n


def _insert_ignore(
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]
) -> int:
    """INSERT ... ON CONFLICT (keys) DO NOTHING on SQLite or PostgreSQL; rows actually inserted."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=keys)
    # RETURNING counts what was really inserted (rowcount is -1 on psycopg here); SQLAlchemy
    # batches the rows into multi-VALUES statements ("insertmanyvalues") on both engines.
    return len(conn.execute(stmt.returning(table.c[keys[0]]), rows).all())


def _paper_ids(conn: Connection, doc: dict[str, Any], stats: ImportStats) -> dict[str, int]:
    """arXiv id -> paper id, creating the referenced papers this catalog lacks (never updating)."""
    wanted = {p["arxiv_id"]: p for p in doc.get("papers", [])}
    found: dict[str, int] = {}
    keys = list(wanted)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        found.update(
            conn.execute(select(P.c.arxiv_id, P.c.id).where(P.c.arxiv_id.in_(chunk))).all()
        )
    missing = [
        PaperRecord(
            arxiv_id=p["arxiv_id"],
            title=p["title"],
            source="import",
            abstract=p.get("abstract") or "",
            authors=list(p.get("authors") or []),
            categories=list(p.get("categories") or []),
            version=p.get("version") or None,
            published=dt.date.fromisoformat(p["published"]) if p.get("published") else None,
            featured_date=(
                dt.date.fromisoformat(p["featured_date"]) if p.get("featured_date") else None
            ),
            upvotes=p.get("source_upvotes"),
            num_comments=p.get("source_comments"),
        )
        for arxiv_id, p in wanted.items()
        if arxiv_id not in found
    ]
    if missing:
        papers.upsert_records(conn, missing)
        stats.add("papers", len(missing))
        found.update(
            conn.execute(
                select(P.c.arxiv_id, P.c.id).where(P.c.arxiv_id.in_([m.arxiv_id for m in missing]))
            ).all()
        )
    return found


def _user_id(conn: Connection, u: dict[str, Any], stats: ImportStats) -> int | None:
    """The account for this username+email, created if neither exists; None on a clash."""
    by_name = conn.execute(select(U.c.id, U.c.email).where(U.c.username == u["username"])).first()
    by_email = conn.execute(
        select(U.c.id).where(func.lower(U.c.email) == u["email"].lower())
    ).scalar()
    if by_name is not None and by_name.id == by_email:
        return int(by_name.id)
    if by_name is not None or by_email is not None:
        stats.conflicts.append(
            f"user {u['username']!r} <{u['email']}>: username or email belongs to another "
            "account here; skipped with all its data"
        )
        return None
    values = {k: u[k] for k in USER_FIELDS}
    for k in ("email_verified_at", "suspended_at", "created_at"):
        values[k] = ts(values[k])
    stats.add("users", 1)
    return int(conn.execute(U.insert().values(**values).returning(U.c.id)).scalar_one())


def import_all(conn: Connection, doc: dict[str, Any]) -> ImportStats:
    """Merge a user-data document into this instance; idempotent (see the module docstring)."""
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise FormatError(
            f"not a {FORMAT} v{VERSION} document (format={doc.get('format')!r}, "
            f"version={doc.get('version')!r})"
        )
    stats = ImportStats()
    pid = _paper_ids(conn, doc, stats)
    uid: dict[str, int] = {}
    touched: set[int] = set()
    for u in doc.get("users", []):
        user_id = _user_id(conn, u, stats)
        if user_id is None:
            continue
        uid[u["username"]] = user_id
        votes: list[dict[str, Any]] = [
            {"user_id": user_id, "paper_id": pid[v["arxiv_id"]], "created_at": ts(v["created_at"])}
            for v in u.get("votes", [])
        ]
        stats.add("votes", _insert_ignore(conn, V, votes, ["user_id", "paper_id"]))
        touched.update(v["paper_id"] for v in votes)
        follows = [
            {
                "user_id": user_id,
                "kind": f["kind"],
                "value": f["value"],
                "created_at": ts(f["created_at"]),
            }
            for f in u.get("follows", [])
        ]
        stats.add("follows", _insert_ignore(conn, FOL, follows, ["user_id", "kind", "value"]))
        for c in u.get("collections", []):
            cid = conn.execute(
                select(COL.c.id).where(COL.c.user_id == user_id, COL.c.slug == c["slug"])
            ).scalar()
            if cid is None:
                cid = conn.execute(
                    COL.insert()
                    .values(
                        user_id=user_id,
                        name=c["name"],
                        slug=c["slug"],
                        description=c.get("description") or "",
                        is_public=bool(c.get("is_public")),
                        created_at=ts(c["created_at"]),
                    )
                    .returning(COL.c.id)
                ).scalar_one()
                stats.add("collections", 1)
            items = [
                {
                    "collection_id": cid,
                    "paper_id": pid[i["arxiv_id"]],
                    "added_at": ts(i["added_at"]),
                }
                for i in c.get("items", [])
            ]
            stats.add(
                "collection_items", _insert_ignore(conn, ITEM, items, ["collection_id", "paper_id"])
            )
        tokens = [
            {
                "user_id": user_id,
                "name": t["name"],
                "token_hash": t["token_hash"],
                "created_at": ts(t["created_at"]),
                "last_used_at": ts(t.get("last_used_at")),
                "revoked_at": ts(t.get("revoked_at")),
            }
            for t in u.get("api_tokens", [])
        ]
        stats.add("api_tokens", _insert_ignore(conn, TOK, tokens, ["token_hash"]))
        for q in u.get("saved_searches", []):
            stats.add("saved_searches", _saved_search(conn, None, user_id, q))
        for arxiv_id in u.get("submissions", []):
            conn.execute(
                update(P)
                .where(P.c.id == pid[arxiv_id], P.c.submitted_by_id.is_(None))
                .values(submitted_by_id=user_id)
            )
    touched |= _import_comments(conn, doc, uid, pid, stats)
    _import_subscribers(conn, doc, uid, pid, stats)
    _recount(conn, touched)
    return stats


def _saved_search(
    conn: Connection, sub_id: int | None, user_id: int | None, q: dict[str, Any]
) -> int:
    owner = (
        SS.c.subscriber_id == sub_id
        if sub_id is not None
        else (SS.c.user_id == user_id) & SS.c.subscriber_id.is_(None)
    )
    if conn.execute(select(SS.c.id).where(owner, SS.c.query == q["query"])).first():
        return 0
    conn.execute(
        SS.insert().values(
            subscriber_id=sub_id, user_id=user_id, query=q["query"], created_at=ts(q["created_at"])
        )
    )
    return 1


def _import_comments(
    conn: Connection,
    doc: dict[str, Any],
    uid: dict[str, int],
    pid: dict[str, int],
    stats: ImportStats,
) -> set[int]:
    """Comments in creation order (parents before replies), matched on their natural key."""
    cid: dict[str, int] = {}
    touched: set[int] = set()
    for c in doc.get("comments", []):
        user_id = uid.get(c["username"])
        if user_id is None:  # its author was skipped as a conflict
            continue
        paper_id, created = pid[c["arxiv_id"]], ts(c["created_at"])
        existing = conn.execute(
            select(C.c.id).where(
                C.c.user_id == user_id, C.c.paper_id == paper_id, C.c.created_at == created
            )
        ).scalar()
        if existing is None:
            existing = conn.execute(
                C.insert()
                .values(
                    paper_id=paper_id,
                    user_id=user_id,
                    parent_id=cid.get(c["parent"]) if c.get("parent") else None,
                    body_md=c["body_md"],
                    body_html=c["body_html"],
                    created_at=created,
                    edited_at=ts(c.get("edited_at")),
                    deleted_at=ts(c.get("deleted_at")),
                    hidden=bool(c.get("hidden")),
                )
                .returning(C.c.id)
            ).scalar_one()
            stats.add("comments", 1)
            touched.add(paper_id)
        cid[c["key"]] = existing
    return touched


def _import_subscribers(
    conn: Connection,
    doc: dict[str, Any],
    uid: dict[str, int],
    pid: dict[str, int],
    stats: ImportStats,
) -> None:
    for s in doc.get("subscribers", []):
        sub_id = conn.execute(
            select(SUB.c.id).where(func.lower(SUB.c.email) == s["email"].lower())
        ).scalar()
        if sub_id is None:
            values = {k: s[k] for k in SUB_FIELDS}
            for k in ("confirmed_at", "unsubscribed_at", "created_at"):
                values[k] = ts(values[k])
            values["user_id"] = uid.get(s["username"]) if s.get("username") else None
            sub_id = conn.execute(SUB.insert().values(**values).returning(SUB.c.id)).scalar_one()
            stats.add("subscribers", 1)
        for q in s.get("saved_searches", []):
            stats.add("saved_searches", _saved_search(conn, sub_id, None, q))
        sent = [
            {"subscriber_id": sub_id, "paper_id": pid[x["arxiv_id"]], "edition": x["edition"]}
            for x in s.get("sent_papers", [])
        ]
        stats.add("sent_papers", _insert_ignore(conn, DP, sent, ["subscriber_id", "paper_id"]))
        feedback = [
            {
                "subscriber_id": sub_id,
                "paper_id": pid[x["arxiv_id"]],
                "signal": x["signal"],
                "created_at": ts(x["created_at"]),
            }
            for x in s.get("feedback", [])
        ]
        stats.add("feedback", _insert_ignore(conn, FB, feedback, ["subscriber_id", "paper_id"]))


def _recount(conn: Connection, paper_ids: set[int]) -> None:
    """Keep the stored counts exact: source counts plus local votes and visible comments."""
    for paper_id in paper_ids:
        votes = (
            select(func.count()).select_from(V).where(V.c.paper_id == paper_id).scalar_subquery()
        )
        comments = (
            select(func.count())
            .select_from(C)
            .where(C.c.paper_id == paper_id, C.c.deleted_at.is_(None), C.c.hidden.is_(False))
            .scalar_subquery()
        )
        conn.execute(
            update(P)
            .where(P.c.id == paper_id)
            .values(upvotes=P.c.source_upvotes + votes, num_comments=P.c.source_comments + comments)
        )
