"""Per-viewer state of the papers a page shows: upvoted?, live counts, submitters, saved."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

from fastapi import Request
from sqlalchemy import Connection

from paperfeed import collections, db, votes
from paperfeed.accounts import usernames


@dataclass
class Viewer:
    voted: set[int] = field(default_factory=set)
    upvotes: dict[int, int] = field(default_factory=dict)  # paper id -> live count
    names: dict[int, str] = field(default_factory=dict)  # submitted_by_id -> username
    saved: dict[int, set[int]] = field(default_factory=dict)  # paper id -> collection ids
    here: str = "/papers"  # this page, for forms that come back to it

    @cached_property
    def signin_href(self) -> str:
        """Sign in, then come back here (the signed-out upvote link)."""
        return "/signin?next=" + quote(self.here, safe="/")


def _is_paper(item: Any) -> bool:
    return hasattr(item, "arxiv_id") and hasattr(item, "submitted_by_id")


def _paper_rows(context: dict[str, Any]) -> list[Any]:
    rows: list[Any] = []
    for value in context.values():
        candidates = value if isinstance(value, list) else [value]
        for item in candidates:
            if not _is_paper(item):
                item = getattr(item, "paper", None)  # search results wrap the row
            if _is_paper(item):
                rows.append(item)
    return rows


def annotate(request: Request, context: dict[str, Any]) -> Viewer:
    """One read transaction for all paper cards on the page (no per-card queries)."""
    query = f"?{request.url.query}" if request.url.query else ""
    viewer = Viewer(here=request.url.path + query)
    rows = _paper_rows(context)
    if not rows:
        return viewer
    user = getattr(request.state, "user", None)
    ids = [r.id for r in rows]
    cached = context.get("parts") or {}  # web/cards.py: these cards carry their submitter
    submitters = {r.submitted_by_id for r in rows if r.submitted_by_id and r.id not in cached}
    conn = getattr(request.state, "conn", None)
    if conn is not None and conn.in_transaction():
        _load(viewer, conn, user, ids, submitters, context.get("rows_cached", False))
    else:
        with db.read(request.app.state.engine) as fresh:
            _load(viewer, fresh, user, ids, submitters, context.get("rows_cached", False))
    return viewer


def _load(
    viewer: Viewer,
    conn: Connection,
    user: Any,
    ids: list[int],
    submitters: set[int],
    rows_cached: bool,
) -> None:
    viewer.names = usernames(conn, submitters)
    if rows_cached:  # the page's rows came from the listing cache: their counts may be old
        viewer.upvotes = votes.live_counts(conn, ids)
    if user is not None:
        viewer.voted = votes.voted_ids(conn, user.id, ids)
        viewer.saved = collections.containing(conn, user.id, ids)
