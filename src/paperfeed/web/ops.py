"""Operations endpoints (/healthz, /readyz, /metrics) and the per-request log + latency metric."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paperfeed import db, metrics

log = logging.getLogger("paperfeed.access")
router = APIRouter(include_in_schema=False)

# A proxy's request id is kept if it looks like one (no header injection into our logs).
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
UNMATCHED = "<unmatched>"  # route label for 404s: never the raw path (unbounded cardinality)


class RequestLogMiddleware:
    """Times every HTTP request; logs one JSON line and observes the latency histogram.

    A plain ASGI middleware (not BaseHTTPMiddleware): it adds no task or stream per request.
    The route label is the matched route's template (`/papers/{arxiv_id:path}`), read from the
    scope after the router has run.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        sent_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = sent_id if REQUEST_ID_RE.match(sent_id) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope.get("method", "")
            metrics.REQUEST_LATENCY.labels(method=method, route=route, status=str(status)).observe(
                elapsed
            )
            log.info(
                "request",
                extra={
                    "method": method,
                    "path": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                },
            )


class InFlightLimit:
    """At most `limit` requests inside the app at once; the rest wait here, holding nothing.

    A sync route takes its database connection in one worker thread (the dependency) and runs
    in another: with more requests in flight than the pool has connections, every worker
    thread can end up waiting for a connection that is held by a request waiting for a
    thread, until the pool's 30 s timeout (seen at 100 users on one process). Half the pool
    leaves room for the few requests that hold two connections at once.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        async with self._slots:
            await self.app(scope, receive, send)


def pool_limit(engine: Engine) -> int | None:
    """Requests in flight one process can serve without waiting on its pool (None: unbounded)."""
    pool = engine.pool
    size, overflow = getattr(pool, "size", None), getattr(pool, "_max_overflow", -1)
    if not callable(size) or overflow < 0:
        return None  # SQLite file databases never block on the pool (db.make_engine)
    return max(1, (int(size()) + int(overflow)) // 2)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers (no dependency checked, so a DB outage never restarts it)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """Readiness: the database answers and carries the schema this code expects."""
    engine = request.app.state.engine
    expected: set[str] = request.app.state.expected_heads
    try:
        applied = db.applied_heads(engine)
    except Exception as exc:  # any driver error means "not ready"
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"},
            status_code=503,
        )
    if applied != expected:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": f"schema at {sorted(applied)}, needs {sorted(expected)}",
                "fix": "paperfeed db upgrade",
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics")
def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition (all local processes in multiprocess mode)."""
    body = metrics.exposition(request.app.state.engine)
    return Response(body, media_type=metrics.CONTENT_TYPE)


def install(app: FastAPI) -> None:
    """Add the ops routes, the in-flight limit and the request log (outermost, so it times
    everything, waiting included)."""
    app.state.expected_heads = db.current_heads(app.state.engine)[1]
    app.include_router(router)
    limit = pool_limit(app.state.engine)
    if limit is not None:
        app.add_middleware(InFlightLimit, limit=limit)
    app.add_middleware(RequestLogMiddleware)
