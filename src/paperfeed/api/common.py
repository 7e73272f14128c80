"""Shared API pieces: the error object, pagination shape, CORS for reads, the response cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import Connection
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

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


class ReadCors(BaseHTTPMiddleware):
    """`Access-Control-Allow-Origin: *` on GET/HEAD under /api/ (reads are public; writes,
    which need a token, stay same-origin)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/api/") and request.method in READ_METHODS:
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Expose-Headers"] = "ETag"
        return response


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(ReadCors)
    app.state.listing_cache = TTLCache(settings.trending_cache_s)


def cached(request: Request, conn: Connection, settings: Settings, build: Callable[[], T]) -> T:
    """Reuse a listing built from the same catalog version within PAPERFEED_TRENDING_CACHE_S."""
    cache: TTLCache | None = getattr(request.app.state, "listing_cache", None)
    if cache is None:
        return build()
    key = f"{request.url.path}?{request.url.query}"
    return cache.get_or_build(key, listing.catalog_version(conn), build)  # type: ignore[no-any-return]
