"""Submit a paper by arXiv id or URL: known ids are featured, unknown ones fetched from arXiv."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from paperfeed import db, ratelimits
from paperfeed.accounts import CurrentUser
from paperfeed.config import Settings
from paperfeed.papers import get_paper, papers_t, upsert_records
from paperfeed.permissions import Invalid
from paperfeed.sources import InvalidArxivId, PaperRecord, arxiv_api, parse_arxiv_id
from paperfeed.sources.fetch import Fetcher, SourceError

DAY_S = 86400  # the submission limit's window: one UTC day
MAX_INPUT = 300  # characters of the submitted id/URL


class ArxivUnavailable(RuntimeError):
    """arXiv could not be asked (network failure, timeout, server error)."""


class RateLimited(RuntimeError):
    """Too many submissions today."""


Fetch = Callable[[str], PaperRecord | None]


def arxiv_fetcher(settings: Settings) -> Fetch:
    """arxiv id -> PaperRecord | None through the arXiv API client; ArxivUnavailable on failure.

    A person is waiting: one retry after half a second, at most 15 s per request (the harvest
    commands use the patient defaults)."""

    def fetch(arxiv_id: str) -> PaperRecord | None:
        timeout = min(settings.http_timeout_s, 15.0)
        with Fetcher(timeout_s=timeout, max_retries=1, backoff_s=0.5) as fetcher:
            try:
                for item in arxiv_api.by_ids(fetcher, settings.arxiv_api_url, [arxiv_id]):
                    if isinstance(item, PaperRecord) and item.arxiv_id == arxiv_id:
                        return item
            except arxiv_api.ArxivApiError:
                return None  # arXiv refused the id itself
            except (SourceError, arxiv_api.MalformedFeed) as exc:
                detail = str(exc).replace(f"{settings.arxiv_api_url}: ", "")
                raise ArxivUnavailable(detail[:200]) from exc
        return None

    return fetch


@dataclass(frozen=True)
class Submitted:
    arxiv_id: str
    created: bool  # new to the catalog
    featured: bool  # featured today by this submission


def _feature(conn: Connection, user: CurrentUser, arxiv_id: str, today: dt.date) -> bool:
    """Feature a known paper today if it never was; the submitter is recorded if none was."""
    paper = get_paper(conn, arxiv_id, include_hidden=True)
    if paper is None:
        return False
    if paper.featured_date is not None:
        return False
    values: dict[str, Any] = {"featured_date": today}
    if paper.submitted_by_id is None and not paper.submitted_by_name:
        values["submitted_by_id"] = user.id
    conn.execute(
        update(papers_t)
        .where(papers_t.c.id == paper.id, papers_t.c.featured_date.is_(None))
        .values(**values)
    )
    return True


def submit_paper(
    engine: Engine, settings: Settings, user: CurrentUser, text: str, fetch: Fetch
) -> Submitted:
    """The whole submission: validate, count against the daily limit, fetch, store, feature.

    Runs its own short transactions so no database lock is held while arXiv is asked.
    """
    if not user.verified:
        raise Invalid("Verify your email address before submitting papers.")
    text = (text or "").strip()
    if not text:
        raise Invalid("Enter an arXiv id (like 2405.15738) or an arXiv URL.")
    try:
        arxiv_id, _ = parse_arxiv_id(text[:MAX_INPUT])
    except InvalidArxivId as exc:
        raise Invalid(
            f"{text[:80]!r} is not an arXiv id. Use an id like 2405.15738 or hep-th/9901001, "
            "or a URL like https://arxiv.org/abs/2405.15738."
        ) from exc
    today = dt.datetime.now(dt.UTC).date()
    with db.transaction(engine) as conn:
        if not ratelimits.hit(conn, f"submit:user:{user.id}", settings.submit_daily_limit, DAY_S):
            raise RateLimited(
                f"You reached today's limit of {settings.submit_daily_limit} submissions; "
                "try again tomorrow."
            )
        known = get_paper(conn, arxiv_id, include_hidden=True)
        if known is not None:
            if known.hidden:
                raise Invalid(f"arXiv:{arxiv_id} was removed by the moderators.")
            return Submitted(arxiv_id, False, _feature(conn, user, arxiv_id, today))
    record = fetch(arxiv_id)  # ArxivUnavailable propagates: nothing was stored
    if record is None:
        raise Invalid(f"arXiv has no paper with the id {arxiv_id}.")
    record.featured_date = today
    with db.transaction(engine) as conn:
        stats = upsert_records(conn, [record])
        conn.execute(
            update(papers_t)
            .where(papers_t.c.arxiv_id == arxiv_id, papers_t.c.submitted_by_id.is_(None))
            .values(submitted_by_id=user.id)
        )
    return Submitted(arxiv_id, stats.new == 1, True)


def submitted_by(conn: Connection, user_id: int, limit: int = 50) -> list[Any]:
    """A user's submitted, visible papers, newest first (profile page)."""
    return list(
        conn.execute(
            select(papers_t)
            .where(papers_t.c.submitted_by_id == user_id, papers_t.c.hidden.is_(False))
            .order_by(papers_t.c.featured_date.desc(), papers_t.c.id.desc())
            .limit(limit)
        )
    )
