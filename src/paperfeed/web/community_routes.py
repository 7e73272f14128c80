"""Community pages: upvotes, submissions, comments, collections, follows, moderation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import Connection

from paperfeed import collections, comments, db, moderation, papers, ratelimits, submissions, votes
from paperfeed.accounts import CurrentUser
from paperfeed.permissions import Invalid, NotFound
from paperfeed.web.auth import MAX_ID, AdminUser, DbId, OptionalUser, RequireUser, safe_next
from paperfeed.web.deps import EngineDep, ReadConn, SettingsDep, WriteConn, render
from paperfeed.web.security import verify_csrf

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

COMMENT_WINDOW_S = 600  # the per-user comment limit counts in 10-minute windows


def visible_paper(conn: Connection, arxiv_id: str) -> Any:
    paper = papers.get_paper(conn, arxiv_id)
    if paper is None:
        raise NotFound(f"No paper {arxiv_id[:64]!r} in this catalog.")
    return paper


def _back(next_: str | None, default: str) -> RedirectResponse:
    return RedirectResponse(safe_next(next_, default), status_code=303)


def paper_context(conn: Connection, paper: Any, user: CurrentUser | None) -> dict[str, Any]:
    """What the paper page adds for the community: thread, follows, the user's collections."""
    follows = {(f.kind, f.value) for f in collections.follows_of(conn, user.id)} if user else set()
    return {
        "thread": comments.thread(conn, paper.id, include_hidden=bool(user and user.is_admin)),
        "followed": follows,
        "author_keys": [(a, papers.name_key(a)) for a in paper.authors[:30]],
        "my_collections": collections.of_user(conn, user.id, public_only=False) if user else [],
    }


# ---- Upvotes (form fallback; the page script uses the JSON API) --------------------------


@router.post("/papers/{arxiv_id:path}/upvote")
def upvote(
    engine: EngineDep,
    user: RequireUser,
    arxiv_id: str,
    next: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    with db.transaction(engine) as conn:  # in the handler's thread: see community_api._vote
        paper = visible_paper(conn, arxiv_id)
        votes.set_vote(conn, user.id, paper.id, None)
    return _back(next, f"/papers/{paper.arxiv_id}")


# ---- Submit a paper ----------------------------------------------------------------------


@router.get("/papers/submit", response_class=HTMLResponse)
def submit_form(request: Request, user: RequireUser, arxiv_id: str = "") -> HTMLResponse:
    return render(request, "submit.html", {"value": arxiv_id[:300], "error": None})


@router.post("/papers/submit", response_class=HTMLResponse)
def submit(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    user: RequireUser,
    arxiv_id: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        done = submissions.submit_paper(
            engine, settings, user, arxiv_id, request.app.state.arxiv_fetch
        )
    except Invalid as exc:
        return render(request, "submit.html", {"value": arxiv_id[:300], "error": str(exc)}, 400)
    except submissions.RateLimited as exc:
        return render(request, "submit.html", {"value": arxiv_id[:300], "error": str(exc)}, 429)
    except submissions.ArxivUnavailable as exc:
        message = f"arXiv could not be reached ({exc}). Nothing was saved; try again later."
        return render(request, "submit.html", {"value": arxiv_id[:300], "error": message}, 502)
    return RedirectResponse(f"/papers/{done.arxiv_id}", status_code=303)


# ---- Comments ----------------------------------------------------------------------------


def post_comment(
    conn: Connection,
    settings: Any,
    user: CurrentUser,
    paper_id: int,
    body: str,
    parent_id: int | None,
) -> int:
    """Shared by the page and the API: verified users only, rate limited."""
    if not user.verified:
        raise Invalid("Verify your email address before commenting (see your settings).")
    key = f"comment:user:{user.id}"
    if not ratelimits.hit(conn, key, settings.comment_limit, COMMENT_WINDOW_S):
        raise submissions.RateLimited("You are commenting too fast; wait a few minutes.")
    return comments.add_comment(conn, user, paper_id, body, parent_id)


@router.post("/papers/{arxiv_id:path}/comments")
def new_comment(
    conn: WriteConn,
    settings: SettingsDep,
    user: RequireUser,
    arxiv_id: str,
    body: Annotated[str, Form(max_length=comments.MAX_BODY * 2)] = "",
    parent_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
) -> Response:
    paper = visible_paper(conn, arxiv_id)
    comment_id = post_comment(conn, settings, user, paper.id, body, parent_id)
    return RedirectResponse(f"/papers/{paper.arxiv_id}#comment-{comment_id}", status_code=303)


@router.get("/comments/{comment_id}/edit", response_class=HTMLResponse)
def edit_comment_form(
    request: Request, conn: ReadConn, user: RequireUser, comment_id: DbId
) -> HTMLResponse:
    row = comments.get_comment(conn, comment_id)
    if row.user_id != user.id:
        raise HTTPException(403, "You can only change your own comments.")
    return render(request, "comment_edit.html", {"comment": row, "error": None})


@router.post("/comments/{comment_id}/edit")
def edit_comment(
    conn: WriteConn,
    user: RequireUser,
    comment_id: DbId,
    body: Annotated[str, Form(max_length=comments.MAX_BODY * 2)] = "",
) -> Response:
    row = comments.edit_comment(conn, user, comment_id, body)
    arxiv_id = comments.paper_arxiv_id(conn, row.paper_id)
    return RedirectResponse(f"/papers/{arxiv_id}#comment-{comment_id}", status_code=303)


@router.post("/comments/{comment_id}/delete")
def delete_comment(conn: WriteConn, user: RequireUser, comment_id: DbId) -> Response:
    row = comments.delete_comment(conn, user, comment_id)
    return RedirectResponse(f"/papers/{comments.paper_arxiv_id(conn, row.paper_id)}#comments", 303)


# ---- Collections -------------------------------------------------------------------------


@router.get("/collections", response_class=HTMLResponse)
def my_collections(request: Request, conn: ReadConn, user: RequireUser) -> HTMLResponse:
    return render(
        request,
        "collections.html",
        {"items": collections.of_user(conn, user.id, public_only=False), "error": None},
    )


@router.post("/collections")
def create_collection(
    conn: WriteConn,
    user: RequireUser,
    name: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=10_000)] = "",
    is_public: Annotated[bool, Form()] = False,
    arxiv_id: Annotated[str, Form(max_length=300)] = "",
    next: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    collection_id = collections.create(conn, user, name, description, is_public)
    if arxiv_id:  # "new collection with this paper" from the save page
        collections.add_paper(conn, user, collection_id, visible_paper(conn, arxiv_id).id)
    return _back(next, f"/collections/{collection_id}")


@router.get("/collections/{collection_id:int}", response_class=HTMLResponse)
def collection_page(
    request: Request, conn: ReadConn, user: OptionalUser, collection_id: DbId
) -> HTMLResponse:
    row = collections.get(conn, collection_id, user)
    return render(
        request,
        "collection.html",
        {
            "collection": row,
            "papers": collections.papers_in(conn, collection_id),
            "own": user is not None and user.id == row.user_id,
        },
    )


@router.get("/collections/{collection_id:int}.bib")
def collection_bibtex(conn: ReadConn, user: OptionalUser, collection_id: DbId) -> Response:
    row = collections.get(conn, collection_id, user)
    body = "\n\n".join(papers.bibtex(p) for p in collections.papers_in(conn, collection_id))
    filename = f"{row.slug}.bib"
    return PlainTextResponse(
        body + "\n",
        media_type="application/x-bibtex; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/collections/{collection_id:int}/edit")
def edit_collection(
    conn: WriteConn,
    user: RequireUser,
    collection_id: DbId,
    name: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=10_000)] = "",
    is_public: Annotated[bool, Form()] = False,
) -> Response:
    collections.update_collection(conn, user, collection_id, name, description, is_public)
    return RedirectResponse(f"/collections/{collection_id}", status_code=303)


@router.post("/collections/{collection_id:int}/delete")
def delete_collection(conn: WriteConn, user: RequireUser, collection_id: DbId) -> Response:
    collections.remove_collection(conn, user, collection_id)
    return RedirectResponse("/collections", status_code=303)


@router.post("/collections/{collection_id:int}/items")
def collection_add(
    conn: WriteConn,
    user: RequireUser,
    collection_id: DbId,
    arxiv_id: Annotated[str, Form(max_length=300)] = "",
    remove: Annotated[bool, Form()] = False,
    next: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    paper = visible_paper(conn, arxiv_id)
    if remove:
        collections.remove_paper(conn, user, collection_id, paper.id)
    else:
        collections.add_paper(conn, user, collection_id, paper.id)
    return _back(next, f"/collections/{collection_id}")


@router.get("/collect/{arxiv_id:path}", response_class=HTMLResponse)
def collect_page(
    request: Request,
    conn: ReadConn,
    user: RequireUser,
    arxiv_id: str,
    next: str = "",
) -> HTMLResponse:
    """Add a paper to (or remove it from) the user's collections: linked from every card."""
    paper = visible_paper(conn, arxiv_id)
    return render(
        request,
        "collect.html",
        {
            "paper": paper,
            "items": collections.of_user(conn, user.id, public_only=False),
            "back": safe_next(next, f"/papers/{paper.arxiv_id}"),
        },
    )


# ---- Follows -----------------------------------------------------------------------------


@router.post("/follows")
def follow(
    conn: WriteConn,
    user: RequireUser,
    kind: Annotated[str, Form(max_length=20)] = "",
    value: Annotated[str, Form(max_length=1000)] = "",
    remove: Annotated[bool, Form()] = False,
    next: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    if remove:
        collections.unfollow(conn, user, kind, value)
    else:
        collections.follow(conn, user, kind, value)
    return _back(next, "/settings")


# ---- Moderation --------------------------------------------------------------------------


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    conn: ReadConn,
    admin: AdminUser,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    entries = moderation.audit_page(conn, before)
    return render(
        request,
        "admin_audit.html",
        {
            "entries": entries,
            "older": entries[-1].id if len(entries) == 100 else None,
            "hidden_papers": moderation.hidden_papers(conn),
            "hidden_comments": moderation.hidden_comments(conn),
        },
    )


@router.post("/admin/papers/{arxiv_id:path}/{action}")
def moderate_paper(
    conn: WriteConn,
    admin: AdminUser,
    arxiv_id: str,
    action: str,
    next: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    if action not in ("hide", "restore"):
        raise HTTPException(404, "Unknown moderation action.")
    moderation.set_paper_hidden(conn, admin.id, arxiv_id, action == "hide")
    return _back(next, "/admin/audit")


@router.post("/admin/comments/{comment_id:int}/{action}")
def moderate_comment(
    conn: WriteConn,
    admin: AdminUser,
    comment_id: DbId,
    action: str,
    next: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    if action not in ("hide", "restore"):
        raise HTTPException(404, "Unknown moderation action.")
    paper_id = moderation.set_comment_hidden(conn, admin.id, comment_id, action == "hide")
    return _back(next, f"/papers/{comments.paper_arxiv_id(conn, paper_id)}#comments")


@router.post("/admin/users/{name}/{action}")
def moderate_user(
    conn: WriteConn,
    admin: AdminUser,
    name: str,
    action: str,
    next: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    if action not in ("suspend", "unsuspend"):
        raise HTTPException(404, "Unknown moderation action.")
    moderation.set_suspended(conn, admin.id, name, action == "suspend")
    return _back(next, "/admin/audit")
