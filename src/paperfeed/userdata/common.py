"""Tables, field lists and value conversions shared by the user-data export and import."""

from __future__ import annotations

import datetime as dt
from typing import Any

from paperfeed.models import (
    ApiToken,
    Collection,
    CollectionItem,
    Comment,
    DigestPaper,
    Feedback,
    Follow,
    Paper,
    SavedSearch,
    Subscriber,
    User,
    Vote,
    table_of,
)

FORMAT = "paperfeed-userdata"
VERSION = 1

P, U, V, C = table_of(Paper), table_of(User), table_of(Vote), table_of(Comment)
COL, ITEM, FOL = table_of(Collection), table_of(CollectionItem), table_of(Follow)
TOK, SUB, SS = table_of(ApiToken), table_of(Subscriber), table_of(SavedSearch)
DP, FB = table_of(DigestPaper), table_of(Feedback)

USER_FIELDS: tuple[str, ...] = ("username", "email", "password_hash", "email_verified_at")
USER_FIELDS += ("is_admin", "suspended_at", "votes_public", "created_at")
SUB_FIELDS: tuple[str, ...] = ("email", "status", "frequency", "delivery_hour", "timezone")
SUB_FIELDS += ("sections", "bounce_count", "confirmed_at", "unsubscribed_at", "created_at")


class FormatError(ValueError):
    """The file is not a paperfeed user-data document this version can read."""


def iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.date | dt.datetime) else v


def row_of(r: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {k: iso(getattr(r, k)) for k in names}


def ts(v: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(v) if v else None


def comment_key(username: str, arxiv_id: str, created_at: str) -> str:
    """A comment's natural key: author, paper and creation time (to the microsecond)."""
    return f"{username}|{arxiv_id}|{created_at}"
