"""CSRF (double-submit cookie), security headers. Sessions/auth plug in beside this."""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie

from fastapi import FastAPI, HTTPException, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class SecurityMiddleware:
    """Issues the CSRF cookie and adds security headers (pure ASGI: no per-request task hop)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = request.cookies.get(CSRF_COOKIE)
        fresh = not token or len(token) != 43
        if fresh:
            token = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = token
        cookie = SimpleCookie()
        cookie[CSRF_COOKIE] = token or ""
        morsel = cookie[CSRF_COOKIE]
        morsel["httponly"] = True
        morsel["samesite"] = "lax"
        morsel["path"] = "/"
        morsel["max-age"] = 31536000  # a year: the token only proves same-origin
        if self.settings.cookie_secure:
            morsel["secure"] = True
        set_cookie = morsel.OutputString().encode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if fresh:
                    headers.append("set-cookie", set_cookie.decode("latin-1"))
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
