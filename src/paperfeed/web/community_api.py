"""JSON API for the community: upvotes, comments, collections, follows, submissions.

Authenticated by `Authorization: Bearer <personal token>`; a browser session works too but
needs the X-CSRF-Token header on state-changing calls. Lists: {"items": [...], "next_cursor"}.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from paperfeed import collections, comments, db, submissions, votes
from paperfeed.web.auth import MAX_ID, ApiUser, DbId, OptionalUser
from paperfeed.web.community_routes import post_comment, visible_paper
from paperfeed.web.deps import EngineDep, ReadConn, SettingsDep

router = APIRouter(prefix="/api", tags=["community"])

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"description": d}
    for s, d in [
        (400, "Invalid input"),
        (401, "Missing or invalid credentials"),
        (403, "Not allowed (or CSRF header missing)"),
        (404, "No such paper/comment/collection"),
        (429, "Rate limited"),
    ]
}


def _cursor(value: str | None) -> int:
    if not value:
        return 0
    if not value.isdigit() or len(value) > 18:
        raise HTTPException(400, "Invalid cursor: pass back the next_cursor you were given.")
    return int(value)


class VoteOut(BaseModel):
    arxiv_id: str
    upvoted: bool
    upvotes: int


class CommentIn(BaseModel):
    body: str = Field(min_length=1, max_length=comments.MAX_BODY)
    parent_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class CommentEdit(BaseModel):
    body: str = Field(min_length=1, max_length=comments.MAX_BODY)


class CommentOut(BaseModel):
    id: int
    parent_id: int | None
    author: str
    body_md: str
    body_html: str
    created_at: dt.datetime
    edited_at: dt.datetime | None


class CommentPage(BaseModel):
    items: list[CommentOut]
    next_cursor: str | None


class CollectionIn(BaseModel):
    name: str = Field(min_length=1, max_length=collections.MAX_NAME)
    description: str = Field(default="", max_length=collections.MAX_DESCRIPTION)
    is_public: bool = False


class CollectionOut(BaseModel):
    id: int
    name: str
    slug: str
    description: str
    is_public: bool
    owner: str
    size: int
    url: str


class PaperRef(BaseModel):
    arxiv_id: str
    title: str
    upvotes: int
    url: str


class CollectionDetail(CollectionOut):
    papers: list[PaperRef]
    next_cursor: str | None


class CollectionPage(BaseModel):
    items: list[CollectionOut]
    next_cursor: str | None


class SubmitIn(BaseModel):
    arxiv_id: str = Field(min_length=1, max_length=submissions.MAX_INPUT, examples=["2405.15738"])


class SubmitOut(BaseModel):
    arxiv_id: str
    created: bool
    featured: bool
    url: str


class FollowIn(BaseModel):
    kind: str = Field(pattern="^(author|category)$")
    value: str = Field(min_length=1, max_length=300)


class FollowOut(BaseModel):
    kind: str
    value: str


def _comment(row: Any) -> CommentOut:
    return CommentOut(
        id=row.id,
        parent_id=row.parent_id,
        author=row.username,
        body_md=row.body_md,
        body_html=row.body_html,
        created_at=row.created_at,
        edited_at=row.edited_at,
    )


def _collection(row: Any, owner: str, size: int) -> CollectionOut:
    return CollectionOut(
        id=row.id,
        name=row.name,
        slug=row.slug,
        description=row.description,
        is_public=row.is_public,
        owner=owner,
        size=size,
        url=f"/collections/{row.id}",
    )


# ---- Upvotes -----------------------------------------------------------------------------


def _vote(engine: Engine, user: Any, arxiv_id: str, want: bool | None) -> VoteOut:
    # Write transactions live in the handler's own thread and end before FastAPI validates
    # the response model, which it does in another worker thread: a SQLite write lock held
    # across that hop deadlocks once every worker is queued on the lock (busy timeout, 500s;
    # tests/test_votes_concurrency.py).
    with db.transaction(engine) as conn:
        paper = visible_paper(conn, arxiv_id)
        voted, count = votes.set_vote(conn, user.id, paper.id, want)
    return VoteOut(arxiv_id=paper.arxiv_id, upvoted=voted, upvotes=count)


@router.post("/papers/{arxiv_id:path}/upvote", responses=ERRORS)
def toggle_upvote(engine: EngineDep, user: ApiUser, arxiv_id: str) -> VoteOut:
    """Toggle the caller's upvote on a paper."""
    return _vote(engine, user, arxiv_id, None)


@router.put("/papers/{arxiv_id:path}/upvote", responses=ERRORS)
def put_upvote(engine: EngineDep, user: ApiUser, arxiv_id: str) -> VoteOut:
    """Upvote a paper (idempotent)."""
    return _vote(engine, user, arxiv_id, True)


@router.delete("/papers/{arxiv_id:path}/upvote", responses=ERRORS)
def delete_upvote(engine: EngineDep, user: ApiUser, arxiv_id: str) -> VoteOut:
    """Withdraw an upvote (idempotent)."""
    return _vote(engine, user, arxiv_id, False)


# ---- Comments ----------------------------------------------------------------------------


@router.get("/papers/{arxiv_id:path}/comments", responses=ERRORS)
def list_comments(
    conn: ReadConn,
    arxiv_id: str,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CommentPage:
    """Visible comments of a paper, oldest first (replies carry parent_id)."""
    paper = visible_paper(conn, arxiv_id)
    rows = comments.page(conn, paper.id, _cursor(cursor), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return CommentPage(
        items=[_comment(r) for r in rows], next_cursor=str(rows[-1].id) if more else None
    )


@router.post("/papers/{arxiv_id:path}/comments", status_code=201, responses=ERRORS)
def create_comment(
    engine: EngineDep, settings: SettingsDep, user: ApiUser, arxiv_id: str, data: CommentIn
) -> CommentOut:
    """Comment on a paper, or reply to a comment (parent_id). Markdown with $LaTeX$."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        paper = visible_paper(conn, arxiv_id)
        comment_id = post_comment(conn, settings, user, paper.id, data.body, data.parent_id)
        return _comment(comments.with_author(conn, comment_id))


@router.patch("/comments/{comment_id}", responses=ERRORS)
def update_comment(
    engine: EngineDep, user: ApiUser, comment_id: DbId, data: CommentEdit
) -> CommentOut:
    """Edit one of your own comments (403 for anyone else's)."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        comments.edit_comment(conn, user, comment_id, data.body)
        return _comment(comments.with_author(conn, comment_id))


@router.delete("/comments/{comment_id}", status_code=204, responses=ERRORS)
def remove_comment(engine: EngineDep, user: ApiUser, comment_id: DbId) -> Response:
    """Delete one of your own comments (403 for anyone else's)."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        comments.delete_comment(conn, user, comment_id)
        return Response(status_code=204)


# ---- Collections -------------------------------------------------------------------------


@router.get("/collections", responses=ERRORS)
def list_collections(
    conn: ReadConn,
    user: ApiUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CollectionPage:
    """The caller's collections (public and private)."""
    rows = collections.of_user(
        conn, user.id, public_only=False, after=_cursor(cursor), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return CollectionPage(
        items=[_collection(r, user.username, r.size) for r in rows],
        next_cursor=str(rows[-1].id) if more else None,
    )


@router.post("/collections", status_code=201, responses=ERRORS)
def create_collection(engine: EngineDep, user: ApiUser, data: CollectionIn) -> CollectionOut:
    """Create a collection."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        cid = collections.create(conn, user, data.name, data.description, data.is_public)
        return _collection(collections.owned(conn, cid, user), user.username, 0)


def _detail(conn: Any, collection_id: DbId, viewer: Any, cursor: str | None, limit: int) -> Any:
    row = collections.get(conn, collection_id, viewer)
    items = collections.papers_in(conn, collection_id, _cursor(cursor), limit + 1)
    more = len(items) > limit
    items = items[:limit]
    base = _collection(row, row.username, collections.size(conn, collection_id)).model_dump()
    return CollectionDetail(
        **base,
        papers=[
            PaperRef(
                arxiv_id=p.arxiv_id, title=p.title, upvotes=p.upvotes, url=f"/papers/{p.arxiv_id}"
            )
            for p in items
        ],
        next_cursor=str(items[-1].id) if more else None,
    )


@router.get("/collections/{collection_id}", responses=ERRORS)
def get_collection(
    request: Request,
    conn: ReadConn,
    viewer: OptionalUser,
    collection_id: DbId,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CollectionDetail:
    """A public collection, or one of the caller's own, with its papers (paginated)."""
    if request.state.auth == "invalid-token":
        raise HTTPException(401, "Invalid or revoked API token.")
    return _detail(conn, collection_id, viewer, cursor, limit)  # type: ignore[no-any-return]


@router.patch("/collections/{collection_id}", responses=ERRORS)
def update_collection(
    engine: EngineDep, user: ApiUser, collection_id: DbId, data: CollectionIn
) -> CollectionDetail:
    """Rename, describe, or make public/private one of your collections."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        collections.update_collection(
            conn, user, collection_id, data.name, data.description, data.is_public
        )
        return _detail(conn, collection_id, user, None, 100)  # type: ignore[no-any-return]


@router.delete("/collections/{collection_id}", status_code=204, responses=ERRORS)
def delete_collection(engine: EngineDep, user: ApiUser, collection_id: DbId) -> Response:
    """Delete one of your collections."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        collections.remove_collection(conn, user, collection_id)
        return Response(status_code=204)


@router.put("/collections/{collection_id}/papers/{arxiv_id:path}", responses=ERRORS)
def add_to_collection(
    engine: EngineDep, user: ApiUser, collection_id: DbId, arxiv_id: str
) -> CollectionDetail:
    """Add a paper to one of your collections (idempotent)."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        collections.add_paper(conn, user, collection_id, visible_paper(conn, arxiv_id).id)
        return _detail(conn, collection_id, user, None, 100)  # type: ignore[no-any-return]


@router.delete("/collections/{collection_id}/papers/{arxiv_id:path}", responses=ERRORS)
def remove_from_collection(
    engine: EngineDep, user: ApiUser, collection_id: DbId, arxiv_id: str
) -> CollectionDetail:
    """Remove a paper from one of your collections (idempotent)."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        collections.remove_paper(conn, user, collection_id, visible_paper(conn, arxiv_id).id)
        return _detail(conn, collection_id, user, None, 100)  # type: ignore[no-any-return]


# ---- Follows -----------------------------------------------------------------------------


@router.get("/follows", responses=ERRORS)
def list_follows(conn: ReadConn, user: ApiUser) -> list[FollowOut]:
    """Authors (by name key) and categories the caller follows."""
    return [FollowOut(kind=f.kind, value=f.value) for f in collections.follows_of(conn, user.id)]


@router.post("/follows", status_code=201, responses=ERRORS)
def add_follow(engine: EngineDep, user: ApiUser, data: FollowIn) -> FollowOut:
    """Follow an author or a category (idempotent)."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        collections.follow(conn, user, data.kind, data.value)
        return FollowOut(kind=data.kind, value=collections.follow_value(data.kind, data.value))


@router.delete("/follows", status_code=204, responses=ERRORS)
def remove_follow(
    engine: EngineDep,
    user: ApiUser,
    kind: Annotated[str, Query(pattern="^(author|category)$")],
    value: Annotated[str, Query(max_length=300)],
) -> Response:
    """Stop following an author or a category."""
    with db.transaction(engine) as conn:  # in the handler's thread: see _vote
        collections.unfollow(conn, user, kind, value)
        return Response(status_code=204)


# ---- Submit ------------------------------------------------------------------------------


@router.post("/papers/submit", responses={**ERRORS, 502: {"description": "arXiv unreachable"}})
def submit_paper(
    request: Request, engine: EngineDep, settings: SettingsDep, user: ApiUser, data: SubmitIn
) -> SubmitOut:
    """Submit a paper by arXiv id or URL: features a known paper, fetches an unknown one."""
    done = submissions.submit_paper(
        engine, settings, user, data.arxiv_id, request.app.state.arxiv_fetch
    )
    return SubmitOut(
        arxiv_id=done.arxiv_id,
        created=done.created,
        featured=done.featured,
        url=f"/papers/{done.arxiv_id}",
    )
