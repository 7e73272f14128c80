"""Paper cards for cached listings: the viewer-independent HTML is cached, the rest is not.

A card has two kinds of content. Title, authors, categories, submitter, code badge, comment
count and the trending breakdown or search snippet are the same for everyone: `card_parts()`
renders them once (the `_card_parts.html` macros) and the listing cache keeps them. The upvote
button (pressed or not, the live count) with its CSRF token and the Save link belong to one
viewer's session: `_card.html` renders them on every request around the cached parts
("hole punching"), so a cached page never shows another user's vote state or carries another
session's token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from markupsafe import Markup
from sqlalchemy import Connection

from paperfeed.accounts import usernames
from paperfeed.api.common import cached
from paperfeed.config import Settings


@dataclass(frozen=True)
class CardParts:
    """One card's viewer-independent HTML, in the three places `_card.html` puts it."""

    head: Markup  # title (with the "new" marker), authors, search snippet
    meta: Markup  # categories, submitter, code badge, comment count
    tail: Markup  # trending breakdown (may be empty)


def card_parts(
    request: Request,
    conn: Connection,
    rows: Sequence[Any],
    *,
    new_since: dt.date | None = None,
    whys: Mapping[int, Any] | None = None,
    weights: Any = None,
) -> dict[int, CardParts]:
    """Render the shared parts of these cards (paper id -> parts); nothing viewer-specific."""
    macros = request.app.state.templates.env.globals["card_parts"]
    names = usernames(conn, {r.submitted_by_id for r in rows if r.submitted_by_id})
    whys = whys or {}
    return {
        r.id: CardParts(
            head=macros.head(r, new_since),
            meta=macros.meta(r, names.get(r.submitted_by_id) if r.submitted_by_id else None),
            tail=macros.tail(r, whys.get(r.id), weights),
        )
        for r in rows
    }


def cached_card_parts(
    request: Request,
    conn: Connection,
    settings: Settings,
    rows: Sequence[Any],
    render: Callable[[Sequence[Any]], dict[int, CardParts]],
) -> dict[int, CardParts]:
    """`render(rows)` (a card_parts() call) through the listing cache: URL + catalog version + TTL.

    Rows and parts are cached separately and may expire apart: papers missing from a cached
    entry are rendered now, so every card of the page always has its parts.
    """
    parts: dict[int, CardParts] = cached(
        request, conn, settings, lambda: render(rows), key="card-parts"
    )
    missing = [r for r in rows if r.id not in parts]
    return {**parts, **render(missing)} if missing else parts
