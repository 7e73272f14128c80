"""CSRF (double-submit cookie), security headers. Sessions/auth plug in beside this."""

from __future__ import annotations

import hmac
import secrets

from fastapi import FastAPI, HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.types import ASGIApp

from paperfeed.config import Settings

CSRF_COOKIE = "pf_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# KaTeX sets inline styles on rendered math, hence style-src 'unsafe-inline'; scripts are ours only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)


class SecurityMiddleware(BaseHTTPMiddleware):
    """Issues the CSRF cookie and adds security headers to every response."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(app)
        self.settings = settings

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        token = request.cookies.get(CSRF_COOKIE)
        fresh = not token or len(token) != 43
        if fresh:
            token = secrets.token_urlsafe(32)
        request.state.csrf_token = token
        response = await call_next(request)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                token or "",
                httponly=True,
                samesite="lax",
                secure=self.settings.cookie_secure,
                max_age=60 * 60 * 24 * 365,
            )
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(SecurityMiddleware, settings=settings)


async def verify_csrf(request: Request) -> None:
    """Dependency for state-changing routes: the form field or header must match the cookie."""
    if request.method in SAFE_METHODS:
        return
    # Signed in: the session's own token (synchronizer); anonymous: the double-submit cookie.
    cookie = getattr(request.state, "session_csrf", None) or request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise HTTPException(status_code=403, detail="CSRF check failed: reload the page and retry.")
