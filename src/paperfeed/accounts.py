"""Users: sign-up, passwords (argon2id), sign-in with lockout, email verification and reset."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from paperfeed.config import Settings
from paperfeed.models import User, table_of, utcnow

users_t = table_of(User)

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,29}$")  # 3-30 chars, URL-safe
EMAIL_RE = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
PASSWORD_MIN = 10  # NIST SP 800-63B asks for at least 8; we ask a little more
PASSWORD_MAX = 256  # bounds argon2 input work; longer inputs are refused, not truncated
LOCKOUT_MAX_S = 3600  # the backoff doubles per failure up to one hour
RESERVED = frozenset({"admin", "api", "settings", "static", "signin", "signup", "me", "root"})
SIGNIN_FAILED = (
    "Wrong username/email or password, or too many attempts. "
    "Wait a few minutes and try again, or reset your password."
)


class AccountError(ValueError):
    """A request about an account that cannot be done, with a message safe to show."""


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user as request handlers see it."""

    id: int
    username: str
    email: str
    is_admin: bool
    verified: bool
    suspended: bool


def current_user(row: Any) -> CurrentUser:
    return CurrentUser(
        id=row.id,
        username=row.username,
        email=row.email,
        is_admin=bool(row.is_admin),
        verified=row.email_verified_at is not None,
        suspended=row.suspended_at is not None,
    )


@functools.lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher(settings: Settings) -> PasswordHasher:
    """The argon2id hasher for the configured cost."""
    return _hasher(
        settings.password_time_cost, settings.password_memory_kib, settings.password_parallelism
    )


@functools.lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash("not-a-real-password")


def _dummy_verify(settings: Settings) -> None:
    """Spend the time of one verification, so unknown users answer as slowly as known ones."""
    key = (
        settings.password_time_cost,
        settings.password_memory_kib,
        settings.password_parallelism,
    )
    with contextlib.suppress(VerificationError):
        hasher(settings).verify(_dummy_hash(*key), "wrong-password-xx")


def check_password_rules(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise AccountError(f"Passwords need at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        raise AccountError(f"Passwords may have at most {PASSWORD_MAX} characters.")


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > 320 or not EMAIL_RE.match(email):
        raise AccountError("Enter a valid email address.")
    return email


def check_username(username: str) -> str:
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise AccountError(
            "Usernames have 3-30 characters: letters, digits, '-' and '_', "
            "starting with a letter or digit."
        )
    if username.lower() in RESERVED:
        raise AccountError("That username is reserved.")
    return username


def by_name(conn: Connection, username: str) -> Row[Any] | None:
    """A user by username (case-insensitive)."""
    return conn.execute(
        select(users_t).where(func.lower(users_t.c.username) == (username or "").lower()[:40])
    ).first()


def by_id(conn: Connection, user_id: int) -> Row[Any] | None:
    return conn.execute(select(users_t).where(users_t.c.id == user_id)).first()


def by_login(conn: Connection, login: str) -> Row[Any] | None:
    """A user by username or email address."""
    login = (login or "").strip().lower()[:320]
    return conn.execute(
        select(users_t).where(
            or_(func.lower(users_t.c.username) == login, users_t.c.email == login)
        )
    ).first()


@dataclass(frozen=True)
class SignUp:
    """Outcome of a sign-up: the new user, or the existing owner of the address to notify."""

    user_id: int | None
    existing_user_id: int | None


def sign_up(
    conn: Connection, settings: Settings, username: str, email: str, password: str
) -> SignUp:
    """Create an unverified account. An address already registered is not revealed."""
    username = check_username(username)
    email = normalise_email(email)
    check_password_rules(password)
    if by_name(conn, username) is not None:
        raise AccountError("That username is taken.")
    password_hash = hasher(settings).hash(password)  # hashed either way: same timing
    owner = conn.execute(select(users_t.c.id).where(users_t.c.email == email)).scalar()
    if owner is not None:
        return SignUp(None, owner)
    try:
        with conn.begin_nested():
            user_id = conn.execute(
                insert(users_t)
                .values(username=username, email=email, password_hash=password_hash)
                .returning(users_t.c.id)
            ).scalar_one()
    except IntegrityError as exc:  # lost a race for the same name or address
        raise AccountError("That username is taken.") from exc
    return SignUp(user_id, None)


@dataclass(frozen=True)
class SignIn:
    """Outcome of a sign-in attempt: the user, or None with the message to show."""

    user: CurrentUser | None
    message: str = ""


def sign_in(conn: Connection, settings: Settings, login: str, password: str) -> SignIn:
    """Check a password with lockout/backoff; failures look the same for every cause."""
    now = utcnow()
    row = by_login(conn, login) if len(password) <= PASSWORD_MAX else None
    if row is None or (row.locked_until is not None and row.locked_until > now):
        _dummy_verify(settings)
        return SignIn(None, SIGNIN_FAILED)
    ph = hasher(settings)
    try:
        ph.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        failures = row.failed_logins + 1
        locked = None
        if failures >= settings.lockout_after:
            backoff = settings.lockout_base_s * 2 ** (failures - settings.lockout_after)
            locked = now + dt.timedelta(seconds=min(backoff, LOCKOUT_MAX_S))
        conn.execute(
            update(users_t)
            .where(users_t.c.id == row.id)
            .values(failed_logins=failures, locked_until=locked)
        )
        return SignIn(None, SIGNIN_FAILED)
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
    if ph.check_needs_rehash(row.password_hash):
        values["password_hash"] = ph.hash(password)
    conn.execute(update(users_t).where(users_t.c.id == row.id).values(**values))
    if row.suspended_at is not None:
        return SignIn(None, "This account is suspended.")
    return SignIn(current_user(row))


def set_password(conn: Connection, settings: Settings, user_id: int, password: str) -> None:
    """Replace a password and clear any lockout."""
    check_password_rules(password)
    conn.execute(
        update(users_t)
        .where(users_t.c.id == user_id)
        .values(password_hash=hasher(settings).hash(password), failed_logins=0, locked_until=None)
    )


def set_votes_public(conn: Connection, user_id: int, public: bool) -> None:
    conn.execute(update(users_t).where(users_t.c.id == user_id).values(votes_public=public))


# ---- Signed email links (verification, password reset) -----------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _state(purpose: str, row: Any) -> str:
    """What the link is bound to: the address (verify) or the current hash (reset: single use)."""
    value = row.email if purpose == "verify" else row.password_hash
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _mac(settings: Settings, payload: str) -> str:
    return _b64(hmac.new(settings.secret_key.encode(), payload.encode(), "sha256").digest())


def email_token(settings: Settings, purpose: str, row: Any) -> str:
    """A signed, expiring link token for 'verify' or 'reset'."""
    hours = settings.verify_token_hours if purpose == "verify" else settings.reset_token_hours
    expires = int((utcnow() + dt.timedelta(hours=hours)).timestamp())
    payload = f"{purpose}:{row.id}:{expires}:{_state(purpose, row)}"
    return f"{_b64(payload.encode())}.{_mac(settings, payload)}"


def read_email_token(
    conn: Connection, settings: Settings, purpose: str, token: str
) -> Row[Any] | None:
    """The user a valid, unexpired, unused token names; None for anything else."""
    try:
        encoded, mac = (token or "")[:400].split(".", 1)
        payload = _unb64(encoded).decode()
        kind, user_id, expires, state = payload.split(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac, _mac(settings, payload)) or kind != purpose:
        return None
    if int(expires) < utcnow().timestamp():
        return None
    row = by_id(conn, int(user_id))
    if row is None or not hmac.compare_digest(state, _state(purpose, row)):
        return None
    return row


def mark_verified(conn: Connection, user_id: int) -> None:
    conn.execute(
        update(users_t)
        .where(users_t.c.id == user_id, users_t.c.email_verified_at.is_(None))
        .values(email_verified_at=utcnow())
    )


def list_users(conn: Connection, limit: int = 1000) -> list[Row[Any]]:
    return list(conn.execute(select(users_t).order_by(users_t.c.id).limit(limit)))


def usernames(conn: Connection, user_ids: set[int]) -> dict[int, str]:
    """{id: username} for the given users (card 'Submitted by' lines)."""
    if not user_ids:
        return {}
    return dict(
        conn.execute(
            select(users_t.c.id, users_t.c.username).where(users_t.c.id.in_(sorted(user_ids)))
        ).all()
    )
