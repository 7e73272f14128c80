"""create_app(settings): the ASGI application (HTML pages and JSON API over one catalog)."""

from __future__ import annotations

import gc
import logging
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from paperfeed import db, ranking, submissions
from paperfeed.api import common as api_common
from paperfeed.api import hf as api_hf
from paperfeed.api import v1 as api_v1
from paperfeed.config import Settings
from paperfeed.web import (
    accounts_routes,
    auth,
    community_api,
    community_routes,
    digest_routes,
    errors,
    listings,
    ops,
    pages,
    search_routes,
    security,
)
from paperfeed.web.deps import make_templates, publish_routes

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "web" / "static"


class CachedStatic(StaticFiles):
    """Static assets with a long cache lifetime (URLs carry a version query string)."""

    async def get_response(self, path, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=604800"
        return response


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Build the app; refuses an unmigrated database with the command that fixes it."""
    engine = engine or db.make_engine(settings.database_url, settings.database_session)
    db.check_migrated(engine)
    with db.read(engine) as conn:
        if ranking.active_weights(conn) != ranking.Weights.from_settings(settings):
            log.warning(
                "PAPERFEED_TRENDING_* differ from the weights trending was scored with; "
                "run `paperfeed trending rescore` to apply them."
            )
    app = FastAPI(
        title=settings.site_name,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.templates = make_templates(settings)
    # The arXiv lookup used by paper submissions (swap in the ingestion client's fetch here).
    app.state.arxiv_fetch = submissions.arxiv_fetcher(settings)
    auth.install(app, settings)  # before security: it must run inside the security middleware
    security.install(app, settings)
    errors.install(app)
    ops.install(app)  # after the other middleware: outermost, times and logs everything
    app.mount("/static", CachedStatic(directory=STATIC_DIR), name="static")
    api_common.install(app, settings)
    # Before the API routers: their /api/papers/{arxiv_id:path} would catch .../similar.
    app.include_router(search_routes.router)
    # Community first: the catalog APIs' /api/papers/{id} and the listings' /papers/... routes
    # would otherwise catch /api/papers/{id}/comments and /papers/submit.
    app.include_router(community_api.router)
    app.include_router(accounts_routes.router)
    app.include_router(community_routes.router)
    # Before pages.router: its /papers/{kind}/{slug} would catch /papers/trending/feed.atom.
    app.include_router(api_hf.router)
    app.include_router(api_v1.router)
    app.include_router(listings.router)
    app.include_router(pages.router)
    app.include_router(digest_routes.router)
    # Keep last: its /papers/{arxiv_id:path} route would shadow any /papers/<word> route after it.
    app.include_router(pages.paper_router)
    publish_routes(app)
    app.router.on_startup.append(partial(_limit_threads, settings.handler_threads))
    return app


async def _limit_threads(n: int) -> None:
    """Run at most n sync handlers at once (the rest wait their turn on the event loop): each
    one holds the GIL whenever it is not waiting on the database, so dozens of threads per
    process only take turns on it, and every turn delays the event loop too."""
    import anyio.to_thread

    anyio.to_thread.current_default_thread_limiter().total_tokens = n


def app_from_env() -> FastAPI:
    """Factory for uvicorn/gunicorn workers: settings from PAPERFEED_* variables."""
    from paperfeed import logs
    from paperfeed.config import get_settings

    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    settle(app, settings)
    return app


def settle(app: FastAPI, settings: Settings) -> None:
    """Ready a serving process: load what its first requests would (the query embedder, every
    template), then move everything allocated so far out of the garbage collector's reach.

    Without gc.freeze() each full collection walks the ~200,000 objects of the imported
    libraries: at ~100 requests/s it ran every 10-20 s and paused every thread of the process
    for 60-150 ms, which made most of bench/load.py's p99. Frozen objects are never freed,
    and all of these live as long as the process anyway."""
    from paperfeed.search import is_indexed
    from paperfeed.search.embedder import get_embedder

    if settings.search_semantic and is_indexed(settings):
        get_embedder(settings.search_max_tokens, settings.search_query_threads)
    env = app.state.templates.env
    for name in env.list_templates(filter_func=lambda n: not n.startswith("mail/")):
        env.get_template(name)  # (mail/ is rendered by digest_render's own environment)
    gc.collect()
    gc.freeze()
