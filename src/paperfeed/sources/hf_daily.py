"""Hugging Face daily papers (`/api/daily_papers?date=YYYY-MM-DD`): a parser for every shape the
endpoint has had (2024: no submitter/repo fields; 2025+: submittedOnDailyAt/By, githubRepo,
projectPage, organization, ai_summary), and a fetch for one date."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from paperfeed.sources import (
    InvalidArxivId,
    PaperRecord,
    Rejected,
    clean_text,
    parse_arxiv_id,
    parse_date,
)
from paperfeed.sources.fetch import Fetcher, SourceError
from paperfeed.sources.jsonl import CODE_URL_FROM

SOURCE = "hf_daily"


def _name(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name") or value.get("user")
    return value if isinstance(value, str) and value else None


def parse_entry(entry: dict[str, Any], *, feed_date: dt.date | None = None) -> PaperRecord:
    """One element of the daily_papers list -> PaperRecord; raises ValueError when unusable."""
    paper = entry.get("paper")
    if not isinstance(paper, dict):
        raise ValueError("no 'paper' object")
    raw_id = paper.get("id")
    try:
        arxiv_id, version = parse_arxiv_id(raw_id if isinstance(raw_id, str) else "")
    except InvalidArxivId as exc:
        raise ValueError(f"bad id {raw_id!r}") from exc
    title = clean_text(paper.get("title") or entry.get("title"))
    if not title:
        raise ValueError(f"{arxiv_id}: missing title")
    abstract = clean_text(paper.get("summary") or entry.get("summary")) or None
    authors = [
        clean_text(a.get("name"))
        for a in paper.get("authors") or []
        if isinstance(a, dict) and clean_text(a.get("name"))
    ]
    # The day it was on the front page: the feed's date when asked for one, else HF's own
    # stamp (submittedOnDailyAt, or the entry's publishedAt in the 2024 shape).
    featured = (
        feed_date
        or parse_date(paper.get("submittedOnDailyAt"))
        or parse_date(entry.get("publishedAt"))
    )
    extra: dict[str, Any] = {"feed_dates": [featured.isoformat()]} if featured else {}
    organization = _name(paper.get("organization") or entry.get("organization"))
    if organization:
        extra["organization"] = organization
    for key in ("ai_summary", "ai_keywords"):
        if paper.get(key):
            extra[key] = paper[key]
    code_url = paper.get("githubRepo") or None
    if code_url:
        extra[CODE_URL_FROM] = "source"
    submitter = paper.get("submittedOnDailyBy")
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        source=SOURCE,
        abstract=abstract,
        authors=authors,
        version=version,
        published=parse_date(paper.get("publishedAt")),
        featured_date=featured,
        upvotes=paper.get("upvotes") if isinstance(paper.get("upvotes"), int) else None,
        num_comments=entry.get("numComments")
        if isinstance(entry.get("numComments"), int)
        else None,
        code_url=code_url,
        code_stars=paper.get("githubStars") if isinstance(paper.get("githubStars"), int) else None,
        project_page=paper.get("projectPage") or None,
        submitted_by_name=submitter.get("user") if isinstance(submitter, dict) else None,
        extra=extra,
    )


def parse_daily(
    body: bytes | str, *, feed_date: dt.date | None = None
) -> Iterator[PaperRecord | Rejected]:
    """A whole daily_papers response (a list, or the {"data": [...]} wrapper some archives hold).
    Raises ValueError if the body is not JSON; bad entries become Rejected('entry N')."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if not isinstance(doc, list):
        raise ValueError("expected a JSON list of daily papers")
    for i, entry in enumerate(doc, start=1):
        if not isinstance(entry, dict):
            yield Rejected(f"entry {i}", "not a JSON object")
            continue
        try:
            yield parse_entry(entry, feed_date=feed_date)
        except ValueError as exc:
            yield Rejected(f"entry {i}", str(exc))


def fetch_daily(fetcher: Fetcher, url: str, date: dt.date | None) -> bytes:
    """The raw response for one date (None: today's feed as HF decides)."""
    params = {"date": date.isoformat()} if date else {}
    resp = fetcher.get(url, params)
    if resp.status_code != 200:
        raise SourceError(f"{url}: HTTP {resp.status_code} for date={date}")
    return resp.content
