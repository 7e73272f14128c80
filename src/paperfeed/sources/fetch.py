"""A polite HTTP client for sources: a minimum interval between requests, retries with
exponential backoff on 5xx/429/connection errors, and `Retry-After` honoured."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from paperfeed import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"paperfeed/{__version__} (self-hosted paper hub; https://github.com/paperfeed)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})  # transient by HTTP semantics
MAX_RETRY_AFTER_S = 600.0  # never sleep longer than this on one Retry-After (10 min)


class SourceError(RuntimeError):
    """A source failed (HTTP error, API error feed, exhausted retries): stop, say why."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds ('10') or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)


class Fetcher:
    """GET with rate limiting and retries; one instance per harvest (it remembers the last call).

    `min_interval_s` spaces the *starts* of consecutive requests (arXiv asks for >= 3 s),
    retries included. Backoff after the n-th failure is `backoff_s * 2**n` unless the server
    sent Retry-After, which wins.
    """

    def __init__(
        self,
        *,
        min_interval_s: float = 0.0,
        timeout_s: float = 30.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._clock = clock
        self._sleep = sleep
        self._last_start: float | None = None
        self.requests = 0  # requests sent, retries included (for logs and tests)
        self._client = httpx.Client(
            timeout=timeout_s,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_turn(self) -> None:
        if self._last_start is not None and self.min_interval_s > 0:
            wait = self._last_start + self.min_interval_s - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_start = self._clock()

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """The response for any non-retryable status (callers judge 4xx); raises SourceError
        once retries are exhausted."""
        problem = ""
        for attempt in range(self.max_retries + 1):
            self._wait_turn()
            self.requests += 1
            delay = self.backoff_s * 2**attempt
            try:
                resp = self._client.get(url, params=params)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code not in RETRY_STATUSES:
                    return resp
                problem = f"HTTP {resp.status_code}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is not None:
                    delay = retry_after
            if attempt < self.max_retries:
                log.warning("%s from %s; retrying in %.1f s", problem, url, delay)
                self._sleep(delay)
        raise SourceError(f"{url}: {problem} after {self.max_retries + 1} attempts")
