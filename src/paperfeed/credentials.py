"""Server-side sessions and personal API tokens; only SHA-256 digests are stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from paperfeed.accounts import CurrentUser, current_user, users_t
from paperfeed.config import Settings
from paperfeed.models import ApiToken, UserSession, table_of, utcnow

sessions_t = table_of(UserSession)
tokens_t = table_of(ApiToken)

TOKEN_PREFIX = "pf_"  # noqa: S105 - marks paperfeed tokens (secret scanners, support)
TOKEN_TOUCH = dt.timedelta(minutes=5)  # last_used_at resolution: avoids a write per API call
MAX_TOKENS = 20  # active tokens per user


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie, never stored
    csrf_token: str
    expires_at: dt.datetime
    persistent: bool


def create_session(
    conn: Connection, settings: Settings, user_id: int, *, remember: bool
) -> NewSession:
    """A new session (fresh token and CSRF token: no fixation across sign-in)."""
    now = utcnow()
    life = (
        dt.timedelta(days=settings.remember_days)
        if remember
        else dt.timedelta(hours=settings.session_hours)
    )
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(
        insert(sessions_t).values(
            token_hash=digest(token),
            user_id=user_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + life,
        )
    )
    conn.execute(delete(sessions_t).where(sessions_t.c.expires_at < now))
    return NewSession(token, csrf, now + life, remember)


def session_user(conn: Connection, token: str) -> tuple[CurrentUser, str] | None:
    """(user, CSRF token) of a live session; None if unknown, expired or suspended."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(
        select(users_t, sessions_t.c.csrf_token, sessions_t.c.expires_at)
        .join(sessions_t, sessions_t.c.user_id == users_t.c.id)
        .where(sessions_t.c.token_hash == digest(token))
    ).first()
    if row is None or row.expires_at < utcnow() or row.suspended_at is not None:
        return None
    return current_user(row), row.csrf_token


def purge_expired(conn: Connection) -> int:
    """Delete expired sessions; returns how many."""
    return conn.execute(delete(sessions_t).where(sessions_t.c.expires_at < utcnow())).rowcount


def end_session(conn: Connection, token: str) -> None:
    conn.execute(delete(sessions_t).where(sessions_t.c.token_hash == digest(token or "")))


def end_all_sessions(conn: Connection, user_id: int) -> None:
    conn.execute(delete(sessions_t).where(sessions_t.c.user_id == user_id))


# ---- Personal API tokens -----------------------------------------------------------------


def create_token(conn: Connection, user_id: int, name: str) -> tuple[int, str]:
    """(id, plaintext) of a new token; the plaintext is shown once and never stored."""
    name = " ".join((name or "").split())
    if not name or len(name) > 100:
        raise ValueError("Give the token a name of 1-100 characters.")
    active = conn.execute(
        select(tokens_t.c.id).where(tokens_t.c.user_id == user_id, tokens_t.c.revoked_at.is_(None))
    ).all()
    if len(active) >= MAX_TOKENS:
        raise ValueError(f"At most {MAX_TOKENS} active tokens; revoke one first.")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = conn.execute(
        insert(tokens_t)
        .values(user_id=user_id, name=name, token_hash=digest(plaintext))
        .returning(tokens_t.c.id)
    ).scalar_one()
    return token_id, plaintext


def list_tokens(conn: Connection, user_id: int) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(tokens_t.c.id, tokens_t.c.name, tokens_t.c.created_at, tokens_t.c.last_used_at)
            .where(tokens_t.c.user_id == user_id, tokens_t.c.revoked_at.is_(None))
            .order_by(tokens_t.c.id)
        )
    )


def revoke_token(conn: Connection, user_id: int, token_id: int) -> bool:
    """Revoke one of the user's own tokens; False if no such token is theirs."""
    return (
        conn.execute(
            update(tokens_t)
            .where(
                tokens_t.c.id == token_id,
                tokens_t.c.user_id == user_id,
                tokens_t.c.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        ).rowcount
        == 1
    )


def token_user(conn: Connection, plaintext: str) -> tuple[CurrentUser, int, bool] | None:
    """(user, token id, needs a last-used touch) for a live token of an active user."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 100:
        return None
    row = conn.execute(
        select(users_t, tokens_t.c.id.label("token_id"), tokens_t.c.last_used_at)
        .join(tokens_t, tokens_t.c.user_id == users_t.c.id)
        .where(tokens_t.c.token_hash == digest(plaintext), tokens_t.c.revoked_at.is_(None))
    ).first()
    if row is None or row.suspended_at is not None:
        return None
    stale = row.last_used_at is None or row.last_used_at < utcnow() - TOKEN_TOUCH
    return current_user(row), row.token_id, stale


def touch_token(conn: Connection, token_id: int) -> None:
    conn.execute(update(tokens_t).where(tokens_t.c.id == token_id).values(last_used_at=utcnow()))
