"""Upvotes: one per user per paper; `papers.upvotes` moves in the same transaction as the row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from paperfeed import ranking
from paperfeed.models import Vote, table_of, utcnow
from paperfeed.papers import papers_t

votes_t = table_of(Vote)


def refresh_hotness(conn: Connection, paper_id: int) -> None:
    """Keep the stored trending score in step, in the caller's transaction."""
    ranking.refresh_hotness(conn, [paper_id])


def _count(conn: Connection, paper_id: int, delta: int) -> int:
    """Move the paper's upvote count and its hotness in one UPDATE; returns the count.

    One row version per vote, not two (count, then hotness): on PostgreSQL each version of a
    papers row adds its whole search vectors to the GIN indexes' pending lists, which every
    keyword search scans (bench/vote_churn.py). The row is locked first, so concurrent votes
    on one paper queue instead of losing a count."""
    row = conn.execute(
        select(*ranking.HOTNESS_COLS).where(papers_t.c.id == paper_id).with_for_update()
    ).one()
    count = int(row.upvotes or 0) + delta
    after = {**row._mapping, "upvotes": count}
    hotness = ranking.hotness_of(after, ranking.active_weights(conn))
    conn.execute(
        update(papers_t).where(papers_t.c.id == paper_id).values(upvotes=count, hotness=hotness)
    )
    return count


def _add(conn: Connection, user_id: int, paper_id: int) -> int | None:
    """The paper's upvotes after a new vote; None if the user had already voted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(votes_t).values(user_id=user_id, paper_id=paper_id, created_at=utcnow())
    # The primary key (user_id, paper_id) decides: a duplicate inserts nothing and counts nothing.
    # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT through SQLAlchemy.
    inserted = (
        conn.execute(stmt.on_conflict_do_nothing().returning(votes_t.c.user_id)).first() is not None
    )
    return _count(conn, paper_id, 1) if inserted else None


def _remove(conn: Connection, user_id: int, paper_id: int) -> int | None:
    """The paper's upvotes after withdrawing a vote; None if there was none."""
    deleted = (
        conn.execute(
            delete(votes_t).where(votes_t.c.user_id == user_id, votes_t.c.paper_id == paper_id)
        ).rowcount
        == 1
    )
    return _count(conn, paper_id, -1) if deleted else None


def set_vote(conn: Connection, user_id: int, paper_id: int, want: bool | None) -> tuple[bool, int]:
    """Vote (True), unvote (False) or toggle (None); returns (voted now, paper's upvotes)."""
    if want is None:
        count = _remove(conn, user_id, paper_id)
        voted = count is None
        if voted:
            count = _add(conn, user_id, paper_id)
    else:
        voted = want
        count = _add(conn, user_id, paper_id) if want else _remove(conn, user_id, paper_id)
    if count is None:  # nothing changed
        count = conn.execute(
            select(papers_t.c.upvotes).where(papers_t.c.id == paper_id)
        ).scalar_one()
    # The vote and its effect on ranking (hotness, written by _count) commit together.
    return voted, int(count)


def voted_ids(conn: Connection, user_id: int, paper_ids: Iterable[int]) -> set[int]:
    """Which of these papers the user has upvoted."""
    ids = list(paper_ids)
    if not ids:
        return set()
    return set(
        conn.execute(
            select(votes_t.c.paper_id).where(
                votes_t.c.user_id == user_id, votes_t.c.paper_id.in_(ids)
            )
        ).scalars()
    )


def live_counts(conn: Connection, paper_ids: Iterable[int]) -> dict[int, int]:
    """Current upvote counts by paper id (cards whose rows came from a cache show these)."""
    ids = list(paper_ids)
    if not ids:
        return {}
    query = select(papers_t.c.id, papers_t.c.upvotes).where(papers_t.c.id.in_(ids))
    return {pid: int(n) for pid, n in conn.execute(query).all()}


def upvoted_papers(conn: Connection, user_id: int, limit: int = 50) -> list[Row[Any]]:
    """A user's most recently upvoted visible papers (profile page)."""
    return list(
        conn.execute(
            select(papers_t)
            .join(votes_t, votes_t.c.paper_id == papers_t.c.id)
            .where(votes_t.c.user_id == user_id, papers_t.c.hidden.is_(False))
            .order_by(votes_t.c.created_at.desc())
            .limit(limit)
        )
    )
