"""The Kaggle arXiv metadata snapshot (`arxiv-metadata-oai-snapshot.json`, one JSON object per
line, ~2.7M lines): a pure row parser and a resumable, constant-memory file reader."""

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

SOURCE = "arxiv_snapshot"
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def parse_version_date(created: str | None) -> dt.date | None:
    """'Mon, 2 Apr 2007 19:18:42 GMT' -> date(2007, 4, 2); None if unparseable."""
    if not created:
        return None
    parts = created.replace(",", " ").split()
    try:
        day, month, year = int(parts[1]), _MONTHS[parts[2][:3]], int(parts[3])
        return dt.date(year, month, day)
    except (IndexError, KeyError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return clean_text(value) or None if isinstance(value, str) else None


def _authors(row: dict[str, Any]) -> list[str]:
    parsed = row.get("authors_parsed")
    names: list[str] = []
    if isinstance(parsed, list):
        for p in parsed:
            # [last, first, suffix(, affiliation)]; hot loop: 2.7M rows x ~6 authors
            try:
                name = " ".join(f"{p[1]} {p[0]} {p[2]}".split())
            except (IndexError, KeyError, TypeError):
                name = " ".join(str(x) for x in reversed(p[:2]) if x) if isinstance(p, list) else ""
            if name:
                names.append(name)
    if names:
        return names
    raw = row.get("authors")
    if not isinstance(raw, str):
        return []
    # Fallback: "A. One, B. Two and C. Three" (TeX accents stay as they are).
    return [n for part in raw.replace(" and ", ", ").split(",") if (n := clean_text(part))]


def parse_row(row: dict[str, Any]) -> PaperRecord:
    """One snapshot row -> PaperRecord; raises ValueError (with the reason) when unusable."""
    raw_id = row.get("id")
    if not isinstance(raw_id, str):
        raise ValueError("missing id")
    try:
        arxiv_id, id_version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        raise ValueError(f"bad id {raw_id!r}") from exc
    title = _str(row.get("title"))
    if not title:
        raise ValueError(f"{arxiv_id}: missing title")
    versions: list[dict[str, Any]] = []
    raw_versions = row.get("versions")
    for v in raw_versions if isinstance(raw_versions, list) else ():
        if not isinstance(v, dict):
            continue
        label = str(v.get("version") or "")
        if label[:1] == "v" and label[1:].isdigit():
            created = parse_version_date(v.get("created"))
            versions.append(
                {"version": int(label[1:]), "created": created.isoformat() if created else None}
            )
    versions.sort(key=lambda v: v["version"])
    version = versions[-1]["version"] if versions else id_version
    published = parse_date(versions[0]["created"]) if versions else None
    updated = parse_date(versions[-1]["created"]) if versions else None
    updated = updated or parse_date(row.get("update_date"))
    abstract = _str(row.get("abstract"))
    comments = _str(row.get("comments"))
    categories: list[str] = []
    raw_categories = row.get("categories")
    for c in raw_categories.split() if isinstance(raw_categories, str) else ():
        if c not in categories:
            categories.append(c)
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        source=SOURCE,
        abstract=abstract,
        authors=_authors(row),
        categories=categories,
        version=version,
        versions=versions,
        published=published,
        updated=updated,
        comments=comments,
        journal_ref=_str(row.get("journal-ref")),
        doi=_str(row.get("doi")),
        license=_str(row.get("license")),
        # code_url stays None: a URL found in the abstract/comments is the catalog's fallback
        # (papers.upsert_records runs find_code_url), so it never overrides a source-given repo.
    )


def snapshot_key(path: Path) -> str:
    """The ingest_state key of one snapshot file."""
    return f"snapshot|{path.resolve()}"


def read_snapshot(
    path: Path, *, offset: int = 0, line_no: int = 0, checkpoint_key: str | None = None
) -> Iterator[Item]:
    """Records of the file from byte `offset`, each followed by a Checkpoint at the next line;
    bad lines become Rejected('line N', why). Ends with a Checkpoint clearing the key."""
    return read_json_records(
        path, parse_row, offset=offset, line_no=line_no, checkpoint_key=checkpoint_key
    )
