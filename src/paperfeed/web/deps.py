"""Typed request dependencies: settings, database connection, templates, rendering."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, Engine

from paperfeed import __version__, db
from paperfeed.config import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"


def make_templates(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.auto_reload = False  # templates ship with the package; no stat() per render
    env.globals.update(
        site_name=settings.site_name,
        base_url=settings.base_url.rstrip("/"),
        asset_version=__version__,
        has_route=lambda path: False,  # replaced by publish_routes() once routes are known
    )
    env.filters["authors_short"] = authors_short
    env.filters["humandate"] = lambda d: d.strftime("%b %-d, %Y") if d else ""
    # Card macros, imported once: an {% import %} or {% include %} per card costs more than
    # the card itself.
    env.globals["card_parts"] = env.get_template("_card_parts.html").module
    env.globals["vote_control"] = env.get_template("_vote.html").module.vote  # type: ignore[attr-defined]
    return templates


def publish_routes(app: Any) -> None:
    """Tell the templates which pages exist (call after every router is included): links and
    controls appear only for routes this app serves, so the UI degrades as features are absent."""
    paths = frozenset(_route_paths(app.routes, ""))
    app.state.templates.env.globals["has_route"] = paths.__contains__


def _route_paths(routes: Any, prefix: str) -> Iterator[str]:
    """Path templates of routes, descending into included routers (FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(getattr(route, "path", None), str):
            yield prefix + route.path
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _route_paths(inner.routes, prefix + getattr(context, "prefix", ""))


def authors_short(authors: list[str], limit: int = 6) -> str:
    """'A, B, C, et al. (12 authors)' for cards; full list on the paper page."""
    if len(authors) <= limit:
        return ", ".join(authors)
    return ", ".join(authors[:limit]) + f" et al. ({len(authors)} authors)"


async def get_settings(request: Request) -> Settings:  # async: no threadpool hop
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def read_conn(request: Request) -> Iterator[Connection]:
    """A read transaction for the request (deferred: never blocks on SQLite writers)."""
    with db.read(request.app.state.engine) as conn:
        request.state.conn = conn  # render() reuses it for per-viewer card state
        yield conn


def write_conn(request: Request) -> Iterator[Connection]:
    """A write transaction for the request: one request, one transaction.

    The transaction begins lazily, at the handler's first statement (SQLAlchemy autobegin fires
    db.py's BEGIN IMMEDIATE then). Beginning it here, in the dependency's worker thread, would
    hold SQLite's write lock while the handler waits for a free worker thread; with every worker
    queued on that lock, requests deadlock until the busy timeout.
    """
    with request.app.state.engine.connect() as conn:
        conn.execution_options(write=True)
        request.state.conn = conn
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ReadConn = Annotated[Connection, Depends(read_conn)]
# scope="function": commit (or roll back) before the response is sent, so a client never sees
# success for a write that then fails to commit, and its next request sees the write.
WriteConn = Annotated[Connection, Depends(write_conn, scope="function")]


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render a page with the shared context (current user, CSRF token, today)."""
    from paperfeed.web.viewer import annotate  # late: viewer imports domain modules

    base = {
        "viewer": annotate(request, context),
        "request": request,
        "today": dt.date.today(),
        "current_user": getattr(request.state, "user", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
    }
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, template, {**base, **context}, status_code=status_code
    )
