"""Submit a paper by arXiv id or URL: known ids are featured, unknown ones fetched from arXiv."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from defusedxml import ElementTree
from sqlalchemy import Connection, Engine, select, update

from paperfeed import db, ratelimits
from paperfeed.accounts import CurrentUser
from paperfeed.config import Settings
from paperfeed.papers import get_paper, papers_t, upsert_records
from paperfeed.permissions import Invalid
from paperfeed.sources import InvalidArxivId, PaperRecord, clean_text, parse_arxiv_id, parse_date

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
DAY_S = 86400  # the submission limit's window: one UTC day
MAX_INPUT = 300  # characters of the submitted id/URL


class ArxivUnavailable(RuntimeError):
    """arXiv could not be asked (network failure, timeout, server error)."""


class RateLimited(RuntimeError):
    """Too many submissions today."""


Fetch = Callable[[str], PaperRecord | None]


def parse_atom_entry(xml: bytes, arxiv_id: str) -> PaperRecord | None:
    """The record for arxiv_id in an arXiv API Atom feed; None if the feed has no such paper.

    Small stand-in until the ingestion branch's arXiv client lands (then use its parser).
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise ArxivUnavailable("arXiv answered with something that is not an Atom feed") from exc
    for entry in root.iter(f"{ATOM}entry"):
        url = entry.findtext(f"{ATOM}id") or ""
        try:
            canonical, version = parse_arxiv_id(url)
        except InvalidArxivId:
            continue  # error entries (id https://arxiv.org/api/errors#...)
        if canonical != arxiv_id:
            continue
        title = clean_text(entry.findtext(f"{ATOM}title"))
        if not title:
            return None
        categories = [c.get("term", "") for c in entry.findall(f"{ATOM}category")]
        primary = entry.find(f"{ARXIV}primary_category")
        if primary is not None and primary.get("term"):
            categories = [primary.get("term", "")] + [
                c for c in categories if c != primary.get("term")
            ]
        published = entry.findtext(f"{ATOM}published")
        return PaperRecord(
            arxiv_id=canonical,
            title=title,
            source="arxiv_api",
            abstract=clean_text(entry.findtext(f"{ATOM}summary")),
            authors=[
                clean_text(a.findtext(f"{ATOM}name"))
                for a in entry.findall(f"{ATOM}author")
                if clean_text(a.findtext(f"{ATOM}name"))
            ],
            categories=[c for c in categories if c],
            version=version,
            versions=[{"version": version, "created": published}] if version else [],
            published=parse_date(published),
            updated=parse_date(entry.findtext(f"{ATOM}updated")),
            comments=clean_text(entry.findtext(f"{ARXIV}comment")) or None,
            journal_ref=clean_text(entry.findtext(f"{ARXIV}journal_ref")) or None,
            doi=clean_text(entry.findtext(f"{ARXIV}doi")) or None,
        )
    return None


def arxiv_fetcher(settings: Settings) -> Fetch:
    """arxiv id -> PaperRecord | None through the arXiv API; ArxivUnavailable on failure."""

    def fetch(arxiv_id: str) -> PaperRecord | None:
        try:
            response = httpx.get(
                settings.arxiv_api_url,
                params={"id_list": arxiv_id, "max_results": 1},
                timeout=min(settings.http_timeout_s, 15.0),
                headers={"User-Agent": f"{settings.site_name} (paperfeed)"},
            )
        except httpx.HTTPError as exc:
            raise ArxivUnavailable(f"could not reach arXiv: {type(exc).__name__}") from exc
        if response.status_code == 400:
            return None  # arXiv refuses ids it does not know the format of
        if response.status_code != 200:
            raise ArxivUnavailable(f"arXiv answered HTTP {response.status_code}")
        return parse_atom_entry(response.content, arxiv_id)

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
