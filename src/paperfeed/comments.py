"""Comment threads: Markdown with LaTeX, sanitised to an allow-list, @mentions, edit/delete."""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from sqlalchemy import Connection, Row, func, insert, select, update

from paperfeed import votes
from paperfeed.accounts import CurrentUser, users_t
from paperfeed.models import Comment, table_of, utcnow
from paperfeed.papers import papers_t
from paperfeed.permissions import Forbidden, Invalid, NotFound

comments_t = table_of(Comment)

MAX_BODY = 10_000  # characters of Markdown per comment
MAX_PER_PAPER = 2000  # comments loaded into one thread page
MAX_DEPTH = 8  # replies nest visually at most this deep; deeper ones attach to the 8th level
MENTION_RE = re.compile(r"(?<![\w@/.])@([A-Za-z0-9][A-Za-z0-9_-]{2,29})")
# $$..$$, \[..\], \(..\), $..$ (inline: one line, no leading/trailing space, not "$5 and $6")
MATH_RE = re.compile(
    r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|(?<![\\$\w])\$(?=\S)[^$\n]+?(?<=\S)\$(?!\d)", re.DOTALL
)
ALLOWED_TAGS = {
    "p", "br", "em", "strong", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h3", "h4", "h5", "h6", "hr",
}  # fmt: skip
ALLOWED_ATTRS = {"a": {"href", "class"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("strikethrough")
# Headings in a comment must not outrank the page's own: # .. ###### become h3 .. h6.


def _heading(tokens: Any, idx: int, *_: Any) -> str:
    tok = tokens[idx]
    level = min(6, int(tok.tag[1]) + 2)
    return f"<h{level}>" if tok.nesting == 1 else f"</h{level}>\n"


_rules: Any = _md.renderer.rules  # type: ignore[attr-defined]
_rules["heading_open"] = _rules["heading_close"] = _heading


def _link_mentions(tokens: list[Token], known: dict[str, str]) -> None:
    """Turn @name in plain text (not in links or code) into links to known users' profiles."""
    for block in tokens:
        if block.type != "inline" or not block.children:
            continue
        out: list[Token] = []
        in_link = 0
        for tok in block.children:
            in_link += 1 if tok.type == "link_open" else -1 if tok.type == "link_close" else 0
            if tok.type != "text" or in_link:
                out.append(tok)
                continue
            pos = 0
            for m in MENTION_RE.finditer(tok.content):
                name = known.get(m.group(1).lower())
                if name is None:
                    continue
                out.append(Token("text", "", 0, content=tok.content[pos : m.start()]))
                out.append(Token("link_open", "a", 1, attrs={"href": f"/users/{name}"}))
                out[-1].attrs["class"] = "mention"
                out.append(Token("text", "", 0, content=f"@{name}"))
                out.append(Token("link_close", "a", -1))
                pos = m.end()
            out.append(Token("text", "", 0, content=tok.content[pos:]))
        block.children = out


def mentioned_users(conn: Connection, text: str) -> dict[str, str]:
    """{lowercase name: username} for the @names in text that are real users."""
    names = {m.group(1).lower() for m in MENTION_RE.finditer(text)}
    if not names:
        return {}
    rows = conn.execute(
        select(users_t.c.username).where(func.lower(users_t.c.username).in_(sorted(names)[:50]))
    ).scalars()
    return {u.lower(): u for u in rows}


def render_markdown(body: str, known: dict[str, str] | None = None) -> str:
    """Markdown (no raw HTML) -> sanitised HTML; LaTeX kept verbatim for KaTeX in the browser."""
    nonce = secrets.token_hex(4)
    maths: list[str] = []

    def stash(m: re.Match[str]) -> str:
        maths.append(m.group(0))
        return f"MATH{nonce}X{len(maths) - 1}X"

    protected = MATH_RE.sub(stash, body)
    tokens = _md.parse(protected)
    _link_mentions(tokens, known or {})
    rendered = _md.renderer.render(tokens, _md.options, {})
    rendered = re.sub(
        f"MATH{nonce}X(\\d+)X", lambda m: html.escape(maths[int(m.group(1))]), rendered
    )
    return nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRS,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener ugc",
        strip_comments=True,
    )


def _check_body(body: str) -> str:
    body = (body or "").replace("\r\n", "\n").replace("\x00", "").strip()
    if not body:
        raise Invalid("Write something first.")
    if len(body) > MAX_BODY:
        raise Invalid(
            f"Comments may have at most {MAX_BODY} characters (this one has {len(body)})."
        )
    return body


def recount(conn: Connection, paper_id: int) -> None:
    """num_comments = the source's count + visible local comments (exact, same transaction)."""
    visible = (
        select(func.count())
        .select_from(comments_t)
        .where(
            comments_t.c.paper_id == paper_id,
            comments_t.c.deleted_at.is_(None),
            comments_t.c.hidden.is_(False),
        )
        .scalar_subquery()
    )
    conn.execute(
        update(papers_t)
        .where(papers_t.c.id == paper_id)
        .values(num_comments=papers_t.c.source_comments + visible)
    )
    votes.refresh_hotness(conn, paper_id)


def add_comment(
    conn: Connection, user: CurrentUser, paper_id: int, body: str, parent_id: int | None = None
) -> int:
    """Post a comment or reply; returns its id."""
    body = _check_body(body)
    if parent_id is not None:
        parent = conn.execute(select(comments_t).where(comments_t.c.id == parent_id)).first()
        if parent is None or parent.paper_id != paper_id:
            raise NotFound("The comment you are replying to does not exist.")
        if parent.deleted_at is not None or parent.hidden:
            raise Invalid("That comment was removed; reply to the thread instead.")
    comment_id = conn.execute(
        insert(comments_t)
        .values(
            paper_id=paper_id,
            user_id=user.id,
            parent_id=parent_id,
            body_md=body,
            body_html=render_markdown(body, mentioned_users(conn, body)),
            created_at=utcnow(),
        )
        .returning(comments_t.c.id)
    ).scalar_one()
    recount(conn, paper_id)
    return int(comment_id)


def get_comment(conn: Connection, comment_id: int) -> Row[Any]:
    row = conn.execute(select(comments_t).where(comments_t.c.id == comment_id)).first()
    if row is None or row.deleted_at is not None:
        raise NotFound("No such comment.")
    return row


def _own(conn: Connection, user: CurrentUser, comment_id: int) -> Row[Any]:
    row = get_comment(conn, comment_id)
    if row.hidden and not user.is_admin:
        raise NotFound("No such comment.")
    if row.user_id != user.id:
        raise Forbidden("You can only change your own comments.")
    return row


def edit_comment(conn: Connection, user: CurrentUser, comment_id: int, body: str) -> Row[Any]:
    """Replace the text of one's own comment."""
    row = _own(conn, user, comment_id)
    body = _check_body(body)
    conn.execute(
        update(comments_t)
        .where(comments_t.c.id == comment_id)
        .values(
            body_md=body,
            body_html=render_markdown(body, mentioned_users(conn, body)),
            edited_at=utcnow(),
        )
    )
    return row


def delete_comment(conn: Connection, user: CurrentUser, comment_id: int) -> Row[Any]:
    """Delete one's own comment: its text goes, replies stay under a '[deleted]' marker."""
    row = _own(conn, user, comment_id)
    conn.execute(
        update(comments_t)
        .where(comments_t.c.id == comment_id)
        .values(body_md="", body_html="", deleted_at=utcnow())
    )
    recount(conn, row.paper_id)
    return row


def set_hidden(conn: Connection, comment_id: int, hidden: bool) -> Row[Any]:
    """Moderation: hide or restore a comment (kept in the database either way)."""
    row = get_comment(conn, comment_id)
    conn.execute(update(comments_t).where(comments_t.c.id == comment_id).values(hidden=hidden))
    recount(conn, row.paper_id)
    return row


@dataclass
class Node:
    """A comment in a thread with its replies."""

    row: Any
    depth: int
    children: list[Node] = field(default_factory=list)


def _with_author() -> Any:
    return select(comments_t, users_t.c.username).join(
        users_t, users_t.c.id == comments_t.c.user_id
    )


def thread(conn: Connection, paper_id: int, *, include_hidden: bool = False) -> list[Node]:
    """The paper's comments as a tree, oldest first; removed ones stay as placeholders.

    include_hidden (moderators): hidden comments are kept, for the template to mark."""
    rows = conn.execute(
        _with_author()
        .where(comments_t.c.paper_id == paper_id)
        .order_by(comments_t.c.id)
        .limit(MAX_PER_PAPER)
    ).all()
    nodes: dict[int, Node] = {}
    holder: dict[int, Node | None] = {}  # the node each comment is nested under
    roots: list[Node] = []
    for row in rows:
        parent = nodes.get(row.parent_id) if row.parent_id else None
        if parent is not None and parent.depth >= MAX_DEPTH:
            parent = holder[parent.row.id]  # too deep: shown beside its parent, not under it
        node = Node(row, parent.depth + 1 if parent else 0)
        nodes[row.id], holder[row.id] = node, parent
        (parent.children if parent else roots).append(node)

    def alive(n: Node) -> bool:  # drop removed comments that have no visible replies
        n.children = [c for c in n.children if alive(c)]
        shown = n.row.deleted_at is None and (include_hidden or not n.row.hidden)
        return bool(n.children) or shown

    return [n for n in roots if alive(n)]


def page(conn: Connection, paper_id: int, after_id: int = 0, limit: int = 50) -> list[Row[Any]]:
    """Visible comments of a paper in id order after a cursor (API pagination)."""
    return list(
        conn.execute(
            _with_author()
            .where(
                comments_t.c.paper_id == paper_id,
                comments_t.c.id > after_id,
                comments_t.c.deleted_at.is_(None),
                comments_t.c.hidden.is_(False),
            )
            .order_by(comments_t.c.id)
            .limit(limit)
        )
    )


def by_user(conn: Connection, user_id: int, limit: int = 50) -> list[Row[Any]]:
    """A user's visible comments on visible papers, newest first (profile page)."""
    return list(
        conn.execute(
            select(comments_t, papers_t.c.arxiv_id, papers_t.c.title)
            .join(papers_t, papers_t.c.id == comments_t.c.paper_id)
            .where(
                comments_t.c.user_id == user_id,
                comments_t.c.deleted_at.is_(None),
                comments_t.c.hidden.is_(False),
                papers_t.c.hidden.is_(False),
            )
            .order_by(comments_t.c.id.desc())
            .limit(limit)
        )
    )


def paper_arxiv_id(conn: Connection, paper_id: int) -> str:
    return str(
        conn.execute(select(papers_t.c.arxiv_id).where(papers_t.c.id == paper_id)).scalar_one()
    )


def with_author(conn: Connection, comment_id: int) -> Row[Any]:
    """One comment with its author's username (API responses)."""
    row = conn.execute(_with_author().where(comments_t.c.id == comment_id)).first()
    if row is None:
        raise NotFound("No such comment.")
    return row
