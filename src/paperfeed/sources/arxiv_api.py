"""arXiv export API (Atom): a pure feed parser and a paging client.

API reference: https://info.arxiv.org/help/api/user-manual.html. Terms of use ask for at most
one request every 3 seconds (`settings.arxiv_delay_s`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import ElementTree

from paperfeed.sources import (
    InvalidArxivId,
    PaperRecord,
    Rejected,
    clean_text,
    parse_arxiv_id,
    parse_date,
)
from paperfeed.sources.fetch import Fetcher, SourceError
from paperfeed.sources.stream import Checkpoint, Item

SOURCE = "arxiv_api"
ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
PAGE_SIZE = 100  # results per request; arXiv allows up to 2000 but recommends small pages
ID_CHUNK = 100  # ids per id_list request (keeps URLs well under server limits)


class ArxivApiError(SourceError):
    """The API answered with an error feed (an entry whose id is .../api/errors#...)."""


class MalformedFeed(ValueError):
    """The response body is not a parseable Atom feed."""


@dataclass
class FeedPage:
    """One response of the API: its entries (records or rejections) and the paging numbers."""

    items: list[PaperRecord | Rejected] = field(default_factory=list)
    total_results: int | None = None
    start_index: int = 0
    items_per_page: int | None = None


def _text(el: Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return clean_text(el.text) or None


def _int(el: Element | None) -> int | None:
    try:
        return int(el.text) if el is not None and el.text else None
    except ValueError:
        return None


def _iso(value: str | None) -> str | None:
    d = parse_date(value)
    return d.isoformat() if d else None


def parse_entry(entry: Element) -> PaperRecord:
    """One Atom <entry> -> PaperRecord; raises ValueError (with the reason) when unusable."""
    raw_id = _text(entry.find(f"{ATOM}id")) or ""
    try:
        arxiv_id, version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        raise ValueError(f"bad id {raw_id!r}") from exc
    title = _text(entry.find(f"{ATOM}title"))
    if not title:
        raise ValueError(f"{arxiv_id}: missing title")
    abstract = _text(entry.find(f"{ATOM}summary"))
    authors = [n for a in entry.findall(f"{ATOM}author") if (n := _text(a.find(f"{ATOM}name")))]
    primary = entry.find(f"{ARXIV}primary_category")
    categories: list[str] = []
    if primary is not None and primary.get("term"):
        categories.append(str(primary.get("term")))
    for c in entry.findall(f"{ATOM}category"):
        term = c.get("term")
        if term and term not in categories:
            categories.append(term)
    published_raw = _text(entry.find(f"{ATOM}published"))
    updated_raw = _text(entry.find(f"{ATOM}updated"))
    comments = _text(entry.find(f"{ARXIV}comment"))
    doi = _text(entry.find(f"{ARXIV}doi"))
    links: dict[str, str] = {}
    for link in entry.findall(f"{ATOM}link"):
        href, title_attr = link.get("href"), link.get("title") or link.get("rel") or ""
        if href:
            links[title_attr] = href
    if not doi and "doi" in links:
        doi = links["doi"].split("doi.org/", 1)[-1]
    # The API reports the latest version with its date (`updated`) and v1's date (`published`);
    # the dates of versions in between are not in the feed.
    versions: list[dict[str, Any]] = []
    if published_raw:
        versions.append({"version": 1, "created": _iso(published_raw)})
    if version and version > 1 and updated_raw:
        versions.append({"version": version, "created": _iso(updated_raw)})
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        source=SOURCE,
        abstract=abstract,
        authors=authors,
        categories=categories,
        version=version,
        versions=versions,
        published=parse_date(published_raw),
        updated=parse_date(updated_raw),
        comments=comments,
        journal_ref=_text(entry.find(f"{ARXIV}journal_ref")),
        doi=doi,
        # code_url stays None: a URL found in the abstract/comments is the catalog's fallback
        # (papers.upsert_records runs find_code_url), so it never overrides a source-given repo.
    )


def parse_feed(body: bytes | str, *, where: str = "feed") -> FeedPage:
    """Parse one API response. Raises MalformedFeed (bad XML) or ArxivApiError (error feed);
    an entry that cannot be used becomes a Rejected with its position."""
    try:
        root = ElementTree.fromstring(body)
    except ParseError as exc:
        raise MalformedFeed(f"{where}: bad XML: {exc}") from exc
    if root.tag != f"{ATOM}feed":
        raise MalformedFeed(f"{where}: not an Atom feed (root <{root.tag}>)")
    page = FeedPage(
        total_results=_int(root.find(f"{OPENSEARCH}totalResults")),
        start_index=_int(root.find(f"{OPENSEARCH}startIndex")) or 0,
        items_per_page=_int(root.find(f"{OPENSEARCH}itemsPerPage")),
    )
    for i, entry in enumerate(root.findall(f"{ATOM}entry"), start=1):
        entry_id = _text(entry.find(f"{ATOM}id")) or ""
        if "/api/errors" in entry_id:
            message = _text(entry.find(f"{ATOM}summary")) or entry_id
            raise ArxivApiError(f"arXiv API error: {message}")
        try:
            page.items.append(parse_entry(entry))
        except ValueError as exc:
            page.items.append(Rejected(f"entry {i} of {where}", str(exc)))
    return page


def build_query(
    category: str | None = None, date_from: dt.date | None = None, date_until: dt.date | None = None
) -> str:
    """`cat:cs.CL AND submittedDate:[202405010000 TO 202405072359]` from the CLI options."""
    parts = []
    if category:
        parts.append(f"cat:{category}")
    if date_from or date_until:
        lo = (date_from or dt.date(1991, 8, 1)).strftime("%Y%m%d") + "0000"  # arXiv's first day
        hi = (date_until or dt.date.today()).strftime("%Y%m%d") + "2359"
        parts.append(f"submittedDate:[{lo} TO {hi}]")
    if not parts:
        raise ValueError("give a category, a date range or ids")
    return " AND ".join(parts)


def fetch_page(fetcher: Fetcher, url: str, params: dict[str, Any], where: str) -> FeedPage:
    resp = fetcher.get(url, params)
    try:
        page = parse_feed(resp.content, where=where)
    except MalformedFeed:
        if resp.status_code >= 400:
            raise SourceError(f"{where}: HTTP {resp.status_code} from {url}") from None
        raise
    if resp.status_code >= 400:
        raise SourceError(f"{where}: HTTP {resp.status_code} from {url} without an error entry")
    return page


def search(
    fetcher: Fetcher,
    url: str,
    query: str,
    *,
    start: int = 0,
    max_results: int | None = None,
    page_size: int = PAGE_SIZE,
    sort_by: str = "submittedDate",
    sort_order: str = "ascending",
    checkpoint_key: str | None = None,
) -> Iterator[Item]:
    """All results of a search_query, page by page from `start`; stops on an empty page, at
    totalResults, or after max_results. Yields a Checkpoint (next start) after each page."""
    seen = start  # resuming at `start` means that many results are behind us
    total: int | None = None
    while max_results is None or seen < max_results:
        size = page_size if max_results is None else min(page_size, max_results - seen)
        params = {
            "search_query": query,
            "start": start,
            "max_results": size,
            "sortBy": sort_by,
            "sortOrder": sort_order,
        }
        where = f"page start={start}"
        try:
            page = fetch_page(fetcher, url, params, where)
        except MalformedFeed as exc:
            # Nothing tells us what this page held; report it, and go on with the next one.
            yield Rejected(where, str(exc))
            start += size
            seen += size
            continue
        if page.total_results is not None:
            total = page.total_results
        if not page.items:
            break
        yield from page.items
        start += len(page.items)
        seen += len(page.items)
        goal = min(total, max_results) if total is not None and max_results else total
        yield Checkpoint(checkpoint_key, {"start": start}, done=seen, total=goal)
        if total is not None and start >= total:
            break
    yield Checkpoint(checkpoint_key, None, done=seen, total=seen)


def by_ids(
    fetcher: Fetcher, url: str, ids: Sequence[str], *, chunk: int = ID_CHUNK
) -> Iterator[Item]:
    """The given papers (versioned ids fetch that version), `chunk` ids per request.

    Ids are checked first: one malformed id would make arXiv reject the whole request."""
    good: list[str] = []
    for n, raw in enumerate(ids, start=1):
        try:
            arxiv_id, version = parse_arxiv_id(raw)
        except InvalidArxivId as exc:
            yield Rejected(f"id {n} ({raw!r})", str(exc))
            continue
        good.append(f"{arxiv_id}v{version}" if version else arxiv_id)
    ids = good
    for i in range(0, len(ids), chunk):
        part = ids[i : i + chunk]
        params = {"id_list": ",".join(part), "start": 0, "max_results": len(part)}
        where = f"id_list request {i // chunk + 1}"
        try:
            page = fetch_page(fetcher, url, params, where)
        except MalformedFeed as exc:
            yield Rejected(where, str(exc))
            continue
        yield from page.items
        returned = {r.arxiv_id for r in page.items if isinstance(r, PaperRecord)}
        for wanted in part:
            if parse_arxiv_id(wanted)[0] not in returned:
                yield Rejected(f"id {wanted}", "not found on arXiv")
        yield Checkpoint(None, None, done=min(i + chunk, len(ids)), total=len(ids))
