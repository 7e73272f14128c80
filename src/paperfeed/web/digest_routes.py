"""Digest pages: subscribe, confirm, manage, unsubscribe (RFC 8058 one-click), feedback links."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from paperfeed import db, mail, subscriptions
from paperfeed.subscriptions import InvalidInput, TokenError
from paperfeed.web.deps import EngineDep, ReadConn, SettingsDep, WriteConn, render
from paperfeed.web.security import verify_csrf

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


def _notice(request: Request, heading: str, message: str, status: int = 200, **extra: object):  # type: ignore[no-untyped-def]
    return render(
        request, "digest/notice.html", {"heading": heading, "message": message, **extra}, status
    )


def _bad_link(request: Request, exc: TokenError) -> HTMLResponse:
    return _notice(request, "This link does not work", str(exc), 400)


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_page(request: Request) -> HTMLResponse:
    return render(request, "digest/subscribe.html", {})


@router.post("/subscribe", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)])
def subscribe(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    email: Annotated[str, Form(max_length=400)] = "",
) -> HTMLResponse:
    """Same answer for every address (no enumeration); the mail goes out after commit."""
    try:
        with db.transaction(engine) as conn:
            message = subscriptions.subscribe(conn, settings, email)
    except InvalidInput as exc:
        return render(request, "digest/subscribe.html", {"error": str(exc), "email": email}, 400)
    if message is not None:
        try:
            mail.send_mail(settings, message)
        except mail.MailError:
            log.exception("confirmation mail not sent")  # same page: it reveals nothing
    return _notice(request, "Check your inbox", subscriptions.SUBSCRIBE_RESPONSE)


@router.get("/subscribe/confirm/{token}", response_class=HTMLResponse)
def confirm(request: Request, settings: SettingsDep, conn: WriteConn, token: str) -> HTMLResponse:
    try:
        prefs = subscriptions.confirm(conn, settings, token)
    except TokenError as exc:
        return _bad_link(request, exc)
    manage = subscriptions.subscriber_token(settings, "manage", prefs.subscriber_id, prefs.email)
    return _notice(
        request,
        "You are subscribed",
        f"The {prefs.frequency} digest will come to {prefs.email}.",
        manage_url=f"/subscribe/manage/{manage}",
    )


def _manage_context(settings: SettingsDep, prefs: subscriptions.Preferences, token: str) -> dict:  # type: ignore[type-arg]
    unsub = subscriptions.subscriber_token(
        settings, "unsubscribe", prefs.subscriber_id, prefs.email
    )
    return {"prefs": prefs, "token": token, "unsubscribe_url": f"/unsubscribe/{unsub}"}


@router.get("/subscribe/manage/{token}", response_class=HTMLResponse)
def manage_page(
    request: Request, settings: SettingsDep, conn: ReadConn, token: str
) -> HTMLResponse:
    try:
        prefs = subscriptions.preferences_from_token(conn, settings, token)
    except TokenError as exc:
        return _bad_link(request, exc)
    return render(request, "digest/manage.html", _manage_context(settings, prefs, token))


@router.post(
    "/subscribe/manage/{token}", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)]
)
def manage_save(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    token: str,
    frequency: Annotated[str, Form(max_length=20)] = "daily",
    delivery_hour: Annotated[int, Form(ge=0, le=23)] = 8,
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    sections: Annotated[list[str] | None, Form()] = None,
    saved_searches: Annotated[str, Form(max_length=2200)] = "",
) -> HTMLResponse:
    try:
        with db.transaction(engine) as conn:
            prefs = subscriptions.update_preferences(
                conn,
                settings,
                token,
                frequency=frequency,
                delivery_hour=delivery_hour,
                timezone=timezone,
                sections=sections or [],
                saved_searches=saved_searches.splitlines(),
            )
    except TokenError as exc:
        return _bad_link(request, exc)
    except InvalidInput as exc:
        with db.read(engine) as conn:
            prefs = subscriptions.preferences_from_token(conn, settings, token)
        ctx = _manage_context(settings, prefs, token) | {"error": str(exc)}
        return render(request, "digest/manage.html", ctx, 400)
    ctx = _manage_context(settings, prefs, token) | {"saved": True}
    return render(request, "digest/manage.html", ctx)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(
    request: Request, settings: SettingsDep, conn: ReadConn, token: str
) -> HTMLResponse:
    """A page with a button: link scanners that follow GETs must not unsubscribe anyone."""
    try:
        email = subscriptions.check_unsubscribe_token(conn, settings, token)
    except TokenError as exc:
        return _bad_link(request, exc)
    return render(request, "digest/unsubscribe.html", {"email": email, "token": token})


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(
    request: Request, settings: SettingsDep, conn: WriteConn, token: str
) -> HTMLResponse:
    """RFC 8058 one-click: the signed token is the authentication; no sign-in, no CSRF token."""
    try:
        email = subscriptions.unsubscribe(conn, settings, token)
    except TokenError as exc:
        return _bad_link(request, exc)
    return _notice(request, "Unsubscribed", f"{email} will receive no more digests.")


@router.get("/digest/feedback/{token}", response_class=HTMLResponse)
def feedback(request: Request, settings: SettingsDep, conn: WriteConn, token: str) -> HTMLResponse:
    """'More like this' / 'not interested' from a digest (idempotent: last click wins)."""
    try:
        result = subscriptions.record_feedback(conn, settings, token)
    except TokenError as exc:
        return _bad_link(request, exc)
    what = "more papers like" if result.signal > 0 else "fewer papers like"
    return _notice(
        request, "Thanks for the feedback", f"Your digest will bring {what} “{result.title}”."
    )
