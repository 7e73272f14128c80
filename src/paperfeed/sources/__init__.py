"""Sources of papers. Each parser turns one source's format into `PaperRecord`s; the catalog
(`paperfeed.papers`) merges them. Parsers are pure; clients (HTTP) live beside them."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

# New-style ids (0704.0001 .. 2405.15738, 4 or 5 digits after the dot) and old-style
# (hep-th/9901001, math.GT/0309136), each with an optional version suffix.
_NEW_ID = re.compile(r"^(?P<id>\d{4}\.\d{4,5})(?:v(?P<v>\d+))?$")
_OLD_ID = re.compile(r"^(?P<id>[a-z][a-z\-]*(?:\.[A-Za-z]{2})?/\d{7})(?:v(?P<v>\d+))?$")
_URL_PREFIX = re.compile(
    r"^(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/|^arxiv:|^oai:arXiv\.org:",
    re.IGNORECASE,
)
# "Code is available at https://github.com/org/repo" in abstracts and comments.
_GITHUB_URL = re.compile(r"https?://(?:www\.)?github\.com/([A-Za-z0-9_.\-]+)/([A-Za-z0-9_.\-]+)")


class InvalidArxivId(ValueError):
    """Not an arXiv identifier in either the old or the new style."""


def parse_arxiv_id(text: str) -> tuple[str, int | None]:
    """'arXiv:2405.15738v2' or an abs/pdf URL -> ('2405.15738', 2); raises InvalidArxivId."""
    s = _URL_PREFIX.sub("", (text or "").strip())
    s = s.removesuffix(".pdf").strip("/")
    for pattern in (_NEW_ID, _OLD_ID):
        m = pattern.match(s)
        if m:
            return m.group("id"), int(m.group("v")) if m.group("v") else None
    raise InvalidArxivId(f"not an arXiv id: {text[:80]!r}")


def find_code_url(*texts: str | None) -> str | None:
    """First GitHub repository URL mentioned in the given texts, normalised."""
    for text in texts:
        if not text:
            continue
        m = _GITHUB_URL.search(text)
        if m:
            owner, repo = m.group(1), m.group(2).rstrip(".").removesuffix(".git")
            if repo:
                return f"https://github.com/{owner}/{repo}"
    return None


def clean_text(text: str | None) -> str:
    """Collapse whitespace (arXiv wraps titles and abstracts at 80 columns)."""
    return " ".join((text or "").split())


def parse_date(value: Any) -> dt.date | None:
    """ISO date/datetime strings ('2024-05-24', '2024-05-24T00:00:00.000Z') -> date."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


@dataclass
class PaperRecord:
    """One paper as a source reports it. None means 'this source does not say'."""

    arxiv_id: str
    title: str
    source: str
    abstract: str | None = None
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # primary first
    version: int | None = None  # latest version this record describes
    versions: list[dict[str, Any]] = field(default_factory=list)  # [{"version": 1, "created": ...}]
    published: dt.date | None = None
    updated: dt.date | None = None
    comments: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    license: str | None = None
    code_url: str | None = None
    code_stars: int | None = None
    project_page: str | None = None
    featured_date: dt.date | None = None
    upvotes: int | None = None
    num_comments: int | None = None
    submitted_by_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rejected:
    """A record a source could not turn into a paper, with where it was and why."""

    position: str  # "line 17", "entry 3 of page 2", ...
    reason: str
