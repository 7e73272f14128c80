"""paperfeed's own JSONL format (the shape of shared/data/hf_daily_papers.jsonl): parse a row
into a PaperRecord, and serialise a catalog paper back into exactly that row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from paperfeed.sources import (
    InvalidArxivId,
    PaperRecord,
    clean_text,
    parse_arxiv_id,
    parse_date,
)
from paperfeed.sources.stream import Item, read_json_records

SOURCE = "jsonl"
# The format, in its key order (export writes exactly these keys, in this order).
FIELDS = (
    "arxiv_id",
    "title",
    "abstract",
    "authors",
    "published",
    "featured_date",
    "upvotes",
    "num_comments",
    "github_repo",
    "github_stars",
    "categories",
    "project_page",
    "organization",
    "submitted_by",
    "ai_keywords",
    "ai_summary",
    "feed_dates",
)
# Fields kept in `papers.extra` (no column of their own).
EXTRA_FIELDS = ("organization", "ai_keywords", "ai_summary", "feed_dates")
# extra["code_url_from"] = "source" when a source named the repository (HF githubRepo, our
# github_repo). The catalog also fills code_url from URLs in the abstract; export writes only
# source-named repositories as github_repo, so ingest -> export is lossless.
CODE_URL_FROM = "code_url_from"


def _opt_str(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value or None


def _opt_int(row: dict[str, Any], key: str) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is not an integer")
    return value


def _opt_date(row: dict[str, Any], key: str) -> dt.date | None:
    value = row.get(key)
    if value in (None, ""):
        return None
    d = parse_date(value)
    if d is None:
        raise ValueError(f"{key} is not a date: {value!r}")
    return d


def _str_list(row: dict[str, Any], key: str) -> list[str] | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} is not a list of strings")
    return value


def parse_row(row: dict[str, Any], *, source: str = SOURCE) -> PaperRecord:
    """One JSONL row -> PaperRecord; raises ValueError (with the reason) when unusable."""
    raw_id = row.get("arxiv_id")
    if not isinstance(raw_id, str):
        raise ValueError("missing arxiv_id")
    try:
        arxiv_id, version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        raise ValueError(f"bad arxiv_id {raw_id!r}") from exc
    title = row.get("title")
    if not isinstance(title, str) or not clean_text(title):
        raise ValueError(f"{arxiv_id}: missing title")
    abstract = _opt_str(row, "abstract")
    extra: dict[str, Any] = {}
    for key in EXTRA_FIELDS:
        if row.get(key) is not None:
            extra[key] = row[key]
    code_url = _opt_str(row, "github_repo")
    if code_url:
        extra[CODE_URL_FROM] = "source"
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        source=source,
        abstract=abstract,
        authors=_str_list(row, "authors") or [],
        categories=_str_list(row, "categories") or [],
        version=version,
        published=_opt_date(row, "published"),
        featured_date=_opt_date(row, "featured_date"),
        upvotes=_opt_int(row, "upvotes"),
        num_comments=_opt_int(row, "num_comments"),
        code_url=code_url,
        code_stars=_opt_int(row, "github_stars"),
        project_page=_opt_str(row, "project_page"),
        submitted_by_name=_opt_str(row, "submitted_by"),
        extra=extra,
    )


def jsonl_key(path: Path) -> str:
    """The ingest_state key of one JSONL file."""
    return f"jsonl|{path.resolve()}"


def read_jsonl(
    path: Path, *, offset: int = 0, line_no: int = 0, checkpoint_key: str | None = None
) -> Iterator[Item]:
    """Records of the file from byte `offset`, each followed by a Checkpoint at the next line."""
    return read_json_records(
        path, parse_row, offset=offset, line_no=line_no, checkpoint_key=checkpoint_key
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else value


def paper_to_row(paper: Any) -> dict[str, Any]:
    """A catalog paper (a `papers` row) -> one JSONL object, keys in FIELDS order.

    Counts are the source-reported ones (`source_upvotes`, `source_comments`), so exporting
    and re-importing into the same instance never double-counts local votes.
    """
    extra = paper.extra or {}
    code_url = paper.code_url if extra.get(CODE_URL_FROM) == "source" else None
    return {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors or []),
        "published": _iso(paper.published),
        "featured_date": _iso(paper.featured_date),
        "upvotes": paper.source_upvotes,
        "num_comments": paper.source_comments,
        "github_repo": code_url,
        "github_stars": paper.code_stars,
        "categories": list(paper.categories) if paper.categories else None,
        "project_page": paper.project_page,
        "organization": extra.get("organization"),
        "submitted_by": paper.submitted_by_name,
        "ai_keywords": extra.get("ai_keywords"),
        "ai_summary": extra.get("ai_summary"),
        "feed_dates": extra.get("feed_dates"),
    }
