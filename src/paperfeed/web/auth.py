"""Who is asking: session cookie or bearer token -> request.state.user; guards for routes."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paperfeed import credentials, db
from paperfeed.accounts import CurrentUser
from paperfeed.config import Settings
from paperfeed.credentials import NewSession
from paperfeed.permissions import Forbidden, Invalid, NotFound
from paperfeed.submissions import ArxivUnavailable, RateLimited
from paperfeed.web.deps import render
from paperfeed.web.security import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS

SESSION_COOKIE = "pf_session"
MAX_ID = 2**63 - 1  # database integer keys: larger path ids are refused (422), never a 500
DbId = Annotated[int, Path(ge=1, le=MAX_ID)]


class SignInRequired(Exception):
    """The route needs a signed-in user."""


class AuthMiddleware:
    """Resolves the session cookie (pages, API) or a bearer token (API only).

    Plain ASGI (not BaseHTTPMiddleware): it runs on every request, so it stays cheap.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _resolve(self, request: Request) -> None:
        engine = request.app.state.engine
        state = request.state
        state.user, state.auth, state.session_csrf = None, None, None
        header = request.headers.get("authorization", "")
        if request.url.path.startswith("/api/") and header[:7].lower() == "bearer ":
            state.auth = "invalid-token"  # a bad token never falls back to the cookie
            with db.read(engine) as conn:
                found = credentials.token_user(conn, header[7:].strip())
            if found is not None:
                state.user, state.auth = found[0], "token"
                if found[2]:
                    with db.transaction(engine) as conn:
                        credentials.touch_token(conn, found[1])
            return
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            with db.read(engine) as conn:
                live = credentials.session_user(conn, token)
            if live is not None:
                state.user, state.auth, state.session_csrf = live[0], "session", live[1]
                state.csrf_token = live[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        await run_in_threadpool(self._resolve, request)
        stale = bool(request.cookies.get(SESSION_COOKIE)) and request.state.auth is None

        async def send_wrapper(message: Message) -> None:
            if stale and message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.append(  # expired or revoked session: drop the cookie
                    "set-cookie", f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=lax"
                )
            await send(message)

        await self.app(scope, receive, send_wrapper)


def set_session_cookies(response: Response, settings: Settings, session: NewSession) -> None:
    """Session cookie (persistent only with 'remember me') and the session's CSRF token."""
    max_age = settings.remember_days * 86400 if session.persistent else None
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=max_age,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
    )
    response.set_cookie(
        CSRF_COOKIE,
        session.csrf_token,
        max_age=60 * 60 * 24 * 365,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
    )


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)  # a fresh anonymous token is issued on the next page


async def optional_user(request: Request) -> CurrentUser | None:
    return getattr(request.state, "user", None)


async def require_user(request: Request) -> CurrentUser:
    user = getattr(request.state, "user", None)
    if user is None:
        raise SignInRequired()
    return user  # type: ignore[no-any-return]


async def require_admin(user: Annotated[CurrentUser, Depends(require_user)]) -> CurrentUser:
    if not user.is_admin:
        raise HTTPException(403, "Only moderators can do this.")
    return user


async def api_user(request: Request) -> CurrentUser:
    """API caller: a bearer token, or a session with the CSRF header on state-changing calls."""
    state = request.state
    if state.auth == "invalid-token":
        raise HTTPException(401, "Invalid or revoked API token.", {"WWW-Authenticate": "Bearer"})
    user = getattr(state, "user", None)
    if user is None:
        raise HTTPException(
            401, "Sign in, or send Authorization: Bearer <token>.", {"WWW-Authenticate": "Bearer"}
        )
    if state.auth == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, state.session_csrf or ""):
            raise HTTPException(403, "CSRF check failed: send the X-CSRF-Token header.")
    return user  # type: ignore[no-any-return]


OptionalUser = Annotated[CurrentUser | None, Depends(optional_user)]
RequireUser = Annotated[CurrentUser, Depends(require_user)]
AdminUser = Annotated[CurrentUser, Depends(require_admin)]
ApiUser = Annotated[CurrentUser, Depends(api_user)]


def safe_next(target: str | None, default: str = "/papers") -> str:
    """A local path to return to after a form (never another site: no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 32 for c in target):
        return default
    return target[:500]


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/") or "application/json" in request.headers.get(
        "accept", ""
    ):
        return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)
    return render(request, "error.html", {"status": status, "message": message}, status)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware (call before security.install: it must run inside it) and handlers."""
    app.add_middleware(AuthMiddleware, settings=settings)

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, exc: SignInRequired) -> Response:
        wants_json = "application/json" in request.headers.get("accept", "")
        if request.url.path.startswith("/api/") or wants_json:
            return _error(request, 401, "Sign in first.")
        if request.method in SAFE_METHODS:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:  # a form posted while signed out: come back to the page that had the form
            referer = urlsplit(request.headers.get("referer", ""))
            same_site = referer.netloc == request.url.netloc
            target = referer.path + (f"?{referer.query}" if referer.query else "")
            target = target if same_site else "/papers"
        return RedirectResponse(f"/signin?next={quote(safe_next(target))}", status_code=303)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, str(exc) or "Not found.")

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, 403, str(exc) or "Not allowed.")

    @app.exception_handler(Invalid)
    async def invalid(request: Request, exc: Invalid) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(RateLimited)
    async def limited(request: Request, exc: RateLimited) -> Response:
        return _error(request, 429, str(exc))

    @app.exception_handler(ArxivUnavailable)
    async def arxiv_down(request: Request, exc: ArxivUnavailable) -> Response:
        return _error(
            request, 502, f"arXiv could not be reached ({exc}). Nothing was saved; try again later."
        )
