"""Shared API pieces: the error object, pagination shape, CORS for reads, the response cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import Connection
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paperfeed import listing
from paperfeed.config import Settings
from paperfeed.web.conditional import TTLCache

T = TypeVar("T")
READ_METHODS = frozenset({"GET", "HEAD"})


class ErrorBody(BaseModel):
    status: int
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorOut(BaseModel):
    """Every API error: {"error": {"status": 404, "message": "..."}} (web/errors.py writes it)."""

    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Bad parameter (e.g. a foreign cursor)"},
    404: {"model": ErrorOut, "description": "Not found"},
    422: {"model": ErrorOut, "description": "Invalid parameter"},
}


class Page(BaseModel, Generic[T]):
    """Cursor pagination: pass `next_cursor` back as `cursor`; null means the last page."""

    items: list[T]
    next_cursor: str | None


class ReadCors:
    """`Access-Control-Allow-Origin: *` on GET/HEAD under /api/ (reads are public; writes,
    which need a token, stay same-origin). Pure ASGI, like the security middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in READ_METHODS
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["access-control-allow-origin"] = "*"
                headers["access-control-expose-headers"] = "ETag"
            await send(message)

        await self.app(scope, receive, send_with_cors)


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(ReadCors)
    app.state.listing_cache = TTLCache(settings.trending_cache_s)


def cached(
    request: Request, conn: Connection, settings: Settings, build: Callable[[], T], key: str = ""
) -> T:
    """Reuse a listing built from the same catalog version within PAPERFEED_TRENDING_CACHE_S."""
    cache: TTLCache | None = getattr(request.app.state, "listing_cache", None)
    if cache is None:
        return build()
    key = f"{key}:{request.url.path}?{request.url.query}"
    # Once per request: a page that caches several parts asks for the version once.
    version = getattr(request.state, "catalog_version", None)
    if version is None:
        version = request.state.catalog_version = listing.catalog_version(conn)
    return cache.get_or_build(key, version, build)  # type: ignore[no-any-return]
