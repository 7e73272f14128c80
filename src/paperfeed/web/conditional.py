"""Conditional GET (ETag / Last-Modified, RFC 9110 §13) and a short-lived response cache."""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

CACHE_ENTRIES = 512  # responses kept per process; listings are a few KB to ~100 KB each


def etag_of(body: bytes) -> str:
    """A strong validator: the body's digest (same bytes, same tag, in any worker)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _http_date(value: dt.datetime) -> str:
    stamp = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return email.utils.format_datetime(stamp.astimezone(dt.UTC), usegmt=True)


def not_modified(request: Request, etag: str, modified: dt.datetime | None) -> bool:
    """True when the client's copy is current. If-None-Match wins over If-Modified-Since."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags
    ims = request.headers.get("if-modified-since")
    if ims and modified is not None:
        try:
            since = email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        return modified.replace(tzinfo=dt.UTC, microsecond=0) <= since
    return False


def conditional(
    request: Request,
    body: bytes,
    media_type: str,
    *,
    modified: dt.datetime | None = None,
    max_age: int = 0,
    headers: dict[str, str] | None = None,
) -> Response:
    """200 with ETag/Last-Modified, or 304 when the request's validators match."""
    etag = etag_of(body)
    out = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}", **(headers or {})}
    if modified is not None:
        out["Last-Modified"] = _http_date(modified)
    if not_modified(request, etag, modified):
        return Response(status_code=304, headers=out)
    return Response(body, media_type=media_type, headers=out)


class TTLCache:
    """Responses reused for `ttl_s` while the catalog version they were built from still holds.

    Honest by construction: a new or changed paper changes the version and misses at once;
    only changes that do not touch papers.modified_at (a vote) can be up to `ttl_s` late.
    """

    def __init__(self, ttl_s: float, size: int = CACHE_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._items: OrderedDict[str, tuple[float, str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key: str, version: str, build: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit and hit[0] > now and hit[1] == version:
                self._items.move_to_end(key)
                return hit[2]
        value = build()
        if self.ttl_s > 0:
            with self._lock:
                self._items[key] = (now + self.ttl_s, version, value)
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return value
