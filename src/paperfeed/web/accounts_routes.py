"""Account pages: sign up/in/out, email verification, password reset, settings, profiles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from paperfeed import accounts, collections, comments, credentials, mail, ratelimits, votes
from paperfeed.accounts import AccountError
from paperfeed.config import Settings
from paperfeed.submissions import submitted_by
from paperfeed.web.auth import (
    DbId,
    OptionalUser,
    RequireUser,
    clear_session_cookies,
    safe_next,
    set_session_cookies,
)
from paperfeed.web.deps import ReadConn, SettingsDep, WriteConn, render
from paperfeed.web.security import verify_csrf

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

WINDOW_15MIN = 900  # sign-in limits: fixed 15-minute windows
WINDOW_HOUR = 3600  # sign-up and mail limits
SENT = "If that address belongs to an account, we sent it a link. Check your inbox (and spam)."


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _send_verification(settings: Settings, row: Any) -> None:
    token = accounts.email_token(settings, "verify", row)
    link = f"{settings.base_url}/verify?token={token}"
    mail.send(
        settings,
        row.email,
        f"Verify your email for {settings.site_name}",
        f"Hello {row.username},\n\nConfirm this address for your {settings.site_name} account:\n"
        f"{link}\n\nThe link works for {settings.verify_token_hours} hours. "
        "If you did not sign up, ignore this message.\n",
    )


def _send_reset(settings: Settings, row: Any) -> None:
    token = accounts.email_token(settings, "reset", row)
    link = f"{settings.base_url}/reset/confirm?token={token}"
    mail.send(
        settings,
        row.email,
        f"Reset your {settings.site_name} password",
        f"Hello {row.username},\n\nChoose a new password here:\n{link}\n\n"
        f"The link works once, for {settings.reset_token_hours} hours. "
        "If you did not ask for it, ignore this message: your password is unchanged.\n",
    )


def _notice(request: Request, title: str, message: str, status: int = 200) -> HTMLResponse:
    return render(request, "notice.html", {"title": title, "message": message}, status)


# ---- Sign up -----------------------------------------------------------------------------


@router.get("/signup", response_class=HTMLResponse)
def signup_form(request: Request) -> HTMLResponse:
    return render(request, "signup.html", {"error": None, "form": {}})


@router.post("/signup", response_class=HTMLResponse)
def signup(
    request: Request,
    conn: WriteConn,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=100)] = "",
    email: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> HTMLResponse:
    form = {"username": username, "email": email}
    if not ratelimits.hit(
        conn, f"signup:ip:{_ip(request)}", settings.signup_limit_per_ip, WINDOW_HOUR
    ):
        return render(
            request,
            "signup.html",
            {"error": "Too many sign-ups from your network; try again in an hour.", "form": form},
            429,
        )
    try:
        result = accounts.sign_up(conn, settings, username, email, password)
    except AccountError as exc:
        return render(request, "signup.html", {"error": str(exc), "form": form}, 400)
    if result.user_id is not None:
        _send_verification(settings, accounts.by_id(conn, result.user_id))
    elif result.existing_user_id is not None:
        row = accounts.by_id(conn, result.existing_user_id)
        assert row is not None
        mail.send(
            settings,
            row.email,
            f"Someone tried to sign up to {settings.site_name} with your address",
            f"Hello {row.username},\n\nSomeone (maybe you) tried to create a new account with "
            f"this address, which already has one. To sign in: {settings.base_url}/signin\n"
            f"Forgot your password? {settings.base_url}/reset\n",
        )
    # The same answer whether or not the address was registered (no enumeration).
    return _notice(
        request,
        "Check your inbox",
        "We sent a verification link to the address you gave. Once verified, sign in.",
    )


# ---- Sign in / out -----------------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str = "/papers") -> HTMLResponse:
    return render(request, "signin.html", {"error": None, "next": safe_next(next), "login": ""})


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    conn: WriteConn,
    settings: SettingsDep,
    login: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    remember: Annotated[bool, Form()] = False,
    next: Annotated[str, Form(max_length=1000)] = "/papers",
) -> Response:
    ctx = {"next": safe_next(next), "login": login}
    ip_ok = ratelimits.hit(
        conn, f"signin:ip:{_ip(request)}", settings.signin_limit_per_ip, WINDOW_15MIN
    )
    name_key = f"signin:name:{login.strip().lower()[:200]}"
    name_ok = ratelimits.hit(conn, name_key, settings.signin_limit_per_name, WINDOW_15MIN)
    if not (ip_ok and name_ok):
        message = "Too many sign-in attempts. Wait 15 minutes, or reset your password."
        return render(request, "signin.html", {**ctx, "error": message}, 429)
    result = accounts.sign_in(conn, settings, login, password)
    if result.user is None:
        return render(request, "signin.html", {**ctx, "error": result.message}, 401)
    old = request.cookies.get("pf_session")
    if old:
        credentials.end_session(conn, old)
    session = credentials.create_session(conn, settings, result.user.id, remember=remember)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookies(response, settings, session)
    return response


@router.post("/signout")
def signout(request: Request, conn: WriteConn) -> Response:
    credentials.end_session(conn, request.cookies.get("pf_session", ""))
    response = RedirectResponse("/papers", status_code=303)
    clear_session_cookies(response)
    return response


# ---- Email verification and password reset ----------------------------------------------


@router.get("/verify", response_class=HTMLResponse)
def verify(request: Request, conn: WriteConn, settings: SettingsDep, token: str = "") -> Response:
    row = accounts.read_email_token(conn, settings, "verify", token)
    if row is None:
        return _notice(
            request,
            "Link expired",
            "This verification link is invalid or expired. Sign in and ask for a new one "
            "in your settings.",
            400,
        )
    accounts.mark_verified(conn, row.id)
    return _notice(
        request, "Email verified", f"Thank you, {row.username}: your address is verified."
    )


@router.post("/verify/resend")
def resend_verification(
    request: Request, conn: WriteConn, settings: SettingsDep, user: RequireUser
) -> Response:
    if not ratelimits.hit(conn, f"mail:user:{user.id}", settings.mail_limit_per_ip, WINDOW_HOUR):
        return _notice(request, "Slow down", "Too many emails requested; try in an hour.", 429)
    row = accounts.by_id(conn, user.id)
    if row is not None and row.email_verified_at is None:
        _send_verification(settings, row)
    return _notice(request, "Check your inbox", f"We sent a new verification link to {user.email}.")


@router.get("/reset", response_class=HTMLResponse)
def reset_form(request: Request) -> HTMLResponse:
    return render(request, "reset.html", {"error": None})


@router.post("/reset", response_class=HTMLResponse)
def reset_request(
    request: Request,
    conn: WriteConn,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=400)] = "",
) -> HTMLResponse:
    if not ratelimits.hit(conn, f"mail:ip:{_ip(request)}", settings.mail_limit_per_ip, WINDOW_HOUR):
        return _notice(request, "Slow down", "Too many emails requested; try in an hour.", 429)
    try:
        address = accounts.normalise_email(email)
    except AccountError as exc:
        return render(request, "reset.html", {"error": str(exc)}, 400)
    row = accounts.by_login(conn, address)
    if row is not None and row.email == address:
        _send_reset(settings, row)
    return _notice(request, "Check your inbox", SENT)


@router.get("/reset/confirm", response_class=HTMLResponse)
def reset_confirm_form(
    request: Request, conn: ReadConn, settings: SettingsDep, token: str = ""
) -> HTMLResponse:
    if accounts.read_email_token(conn, settings, "reset", token) is None:
        return _notice(request, "Link expired", "This reset link is invalid, used or expired.", 400)
    return render(request, "reset_confirm.html", {"token": token, "error": None})


@router.post("/reset/confirm", response_class=HTMLResponse)
def reset_confirm(
    request: Request,
    conn: WriteConn,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> HTMLResponse:
    row = accounts.read_email_token(conn, settings, "reset", token)
    if row is None:
        return _notice(request, "Link expired", "This reset link is invalid, used or expired.", 400)
    try:
        accounts.set_password(conn, settings, row.id, password)
    except AccountError as exc:
        return render(request, "reset_confirm.html", {"token": token, "error": str(exc)}, 400)
    credentials.end_all_sessions(conn, row.id)  # a reset signs every device out
    accounts.mark_verified(conn, row.id)  # the link proved the address
    return _notice(request, "Password changed", "Your password was changed. Sign in with it now.")


# ---- Settings: privacy, API tokens -------------------------------------------------------


def _settings_page(
    request: Request, conn: Connection, user: accounts.CurrentUser, **extra: object
) -> HTMLResponse:
    row = accounts.by_id(conn, user.id)
    return render(
        request,
        "settings.html",
        {
            "row": row,
            "tokens": credentials.list_tokens(conn, user.id),
            "follows": collections.follows_of(conn, user.id),
            "new_token": None,
            "error": None,
            **extra,
        },
    )


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, conn: ReadConn, user: RequireUser) -> HTMLResponse:
    return _settings_page(request, conn, user)


@router.post("/settings/privacy")
def privacy(
    conn: WriteConn, user: RequireUser, votes_public: Annotated[bool, Form()] = False
) -> Response:
    accounts.set_votes_public(conn, user.id, votes_public)
    return RedirectResponse("/settings", status_code=303)


@router.post("/settings/tokens", response_class=HTMLResponse)
def new_token(
    request: Request,
    conn: WriteConn,
    user: RequireUser,
    name: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    try:
        _, plaintext = credentials.create_token(conn, user.id, name)
    except ValueError as exc:
        return _settings_page(request, conn, user, error=str(exc))
    return _settings_page(request, conn, user, new_token=plaintext)


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(conn: WriteConn, user: RequireUser, token_id: DbId) -> Response:
    if not credentials.revoke_token(conn, user.id, token_id):
        raise HTTPException(404, "No such token.")
    return RedirectResponse("/settings", status_code=303)


# ---- Profiles ----------------------------------------------------------------------------


@router.get("/users/{name}", response_class=HTMLResponse)
def profile(request: Request, conn: ReadConn, name: str, viewer: OptionalUser) -> HTMLResponse:
    row = accounts.by_name(conn, name)
    if row is None or (row.suspended_at is not None and not (viewer and viewer.is_admin)):
        raise HTTPException(404, f"No user named {name[:40]!r}.")
    own = viewer is not None and viewer.id == row.id
    return render(
        request,
        "profile.html",
        {
            "profile": row,
            "submitted": submitted_by(conn, row.id),
            "upvoted": votes.upvoted_papers(conn, row.id) if row.votes_public or own else None,
            "comments": comments.by_user(conn, row.id),
            "user_collections": collections.of_user(conn, row.id, public_only=not own),
        },
    )
