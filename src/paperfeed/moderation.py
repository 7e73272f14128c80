"""Moderation: admin role, hiding papers and comments, suspending users; all audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from paperfeed import comments, credentials
from paperfeed.accounts import by_name, users_t
from paperfeed.models import AuditLog, table_of, utcnow
from paperfeed.papers import papers_t
from paperfeed.permissions import Invalid, NotFound

audit_t = table_of(AuditLog)


def audit(
    conn: Connection,
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: object,
    **detail: Any,
) -> None:
    """Record one moderation action (actor None: the command line)."""
    conn.execute(
        insert(audit_t).values(
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id)[:100],
            detail=detail,
            created_at=utcnow(),
        )
    )


def _user(conn: Connection, name: str) -> Row[Any]:
    row = by_name(conn, name)
    if row is None:
        raise NotFound(f"No user named {name[:40]!r}.")
    return row


def set_admin(conn: Connection, actor_id: int | None, name: str, admin: bool) -> bool:
    """Promote or demote; returns whether anything changed."""
    row = _user(conn, name)
    if bool(row.is_admin) == admin:
        return False
    conn.execute(update(users_t).where(users_t.c.id == row.id).values(is_admin=admin))
    audit(conn, actor_id, "promote" if admin else "demote", "user", row.username)
    return True


def set_suspended(conn: Connection, actor_id: int | None, name: str, suspended: bool) -> bool:
    """Suspend (ends all sessions; tokens stop working) or reinstate a user."""
    row = _user(conn, name)
    if actor_id is not None and row.id == actor_id:
        raise Invalid("You cannot suspend yourself.")
    if (row.suspended_at is not None) == suspended:
        return False
    conn.execute(
        update(users_t)
        .where(users_t.c.id == row.id)
        .values(suspended_at=utcnow() if suspended else None)
    )
    if suspended:
        credentials.end_all_sessions(conn, row.id)
    audit(conn, actor_id, "suspend" if suspended else "unsuspend", "user", row.username)
    return True


def set_paper_hidden(conn: Connection, actor_id: int | None, arxiv_id: str, hidden: bool) -> bool:
    row = conn.execute(select(papers_t).where(papers_t.c.arxiv_id == arxiv_id)).first()
    if row is None:
        raise NotFound(f"No paper {arxiv_id[:64]!r}.")
    if bool(row.hidden) == hidden:
        return False
    # modified_at too: hiding changes the catalog version, so no cached listing keeps the paper.
    conn.execute(
        update(papers_t).where(papers_t.c.id == row.id).values(hidden=hidden, modified_at=utcnow())
    )
    audit(conn, actor_id, "hide" if hidden else "restore", "paper", arxiv_id, title=row.title[:200])
    return True


def set_comment_hidden(
    conn: Connection, actor_id: int | None, comment_id: int, hidden: bool
) -> int:
    """Hide or restore a comment; returns its paper id."""
    row = comments.set_hidden(conn, comment_id, hidden)
    audit(conn, actor_id, "hide" if hidden else "restore", "comment", comment_id)
    return int(row.paper_id)


def audit_page(conn: Connection, before: int | None = None, limit: int = 100) -> list[Row[Any]]:
    """Audit entries newest first, with the actor's name."""
    query = select(audit_t, users_t.c.username).outerjoin(
        users_t, users_t.c.id == audit_t.c.actor_id
    )
    if before:
        query = query.where(audit_t.c.id < before)
    return list(conn.execute(query.order_by(audit_t.c.id.desc()).limit(limit)))


def hidden_papers(conn: Connection, limit: int = 200) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(papers_t.c.arxiv_id, papers_t.c.title)
            .where(papers_t.c.hidden.is_(True))
            .order_by(papers_t.c.modified_at.desc())
            .limit(limit)
        )
    )


def hidden_comments(conn: Connection, limit: int = 200) -> list[Row[Any]]:
    ct = comments.comments_t
    return list(
        conn.execute(
            select(ct.c.id, ct.c.body_md, papers_t.c.arxiv_id, users_t.c.username)
            .join(papers_t, papers_t.c.id == ct.c.paper_id)
            .join(users_t, users_t.c.id == ct.c.user_id)
            .where(ct.c.hidden.is_(True), ct.c.deleted_at.is_(None))
            .order_by(ct.c.id.desc())
            .limit(limit)
        )
    )
