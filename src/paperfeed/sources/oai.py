"""arXiv OAI-PMH `ListRecords` (metadataPrefix `arXiv`): a pure page parser and a harvester
that follows resumption tokens, checkpointing each one.

Protocol: https://www.openarchives.org/OAI/openarchivesprotocol.html; arXiv specifics:
https://info.arxiv.org/help/oa/index.html (sets like `cs` or `physics:hep-th`, 503 + Retry-After
flow control, which `Fetcher` honours).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
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

SOURCE = "arxiv_oai"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
ARXIV = "{http://arxiv.org/OAI/arXiv/}"
METADATA_PREFIX = "arXiv"


class OaiError(SourceError):
    """An OAI-PMH <error> other than noRecordsMatch (badArgument, badResumptionToken, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"OAI-PMH error {code}: {message}")
        self.code = code


class MalformedPage(ValueError):
    """The response body is not parseable OAI-PMH XML."""


@dataclass
class OaiPage:
    """One ListRecords response: its records and where the list goes on."""

    items: list[PaperRecord | Rejected] = field(default_factory=list)
    token: str | None = None  # None or empty: this was the last page
    cursor: int | None = None
    complete_list_size: int | None = None


def _text(parent: Element, tag: str) -> str | None:
    el = parent.find(tag)
    if el is None or el.text is None:
        return None
    return clean_text(el.text) or None


def _author_name(author: Element) -> str:
    parts = [_text(author, f"{ARXIV}forenames"), _text(author, f"{ARXIV}keyname")]
    name = " ".join(p for p in parts if p)
    suffix = _text(author, f"{ARXIV}suffix")
    return f"{name} {suffix}" if suffix else name


def parse_arxiv_metadata(meta: Element) -> PaperRecord:
    """An <arXiv> metadata element -> PaperRecord; raises ValueError when unusable."""
    raw_id = _text(meta, f"{ARXIV}id") or ""
    try:
        arxiv_id, version = parse_arxiv_id(raw_id)
    except InvalidArxivId as exc:
        raise ValueError(f"bad id {raw_id!r}") from exc
    title = _text(meta, f"{ARXIV}title")
    if not title:
        raise ValueError(f"{arxiv_id}: missing title")
    abstract = _text(meta, f"{ARXIV}abstract")
    comments = _text(meta, f"{ARXIV}comments")
    authors_el = meta.find(f"{ARXIV}authors")
    authors = (
        [n for a in authors_el.findall(f"{ARXIV}author") if (n := _author_name(a))]
        if authors_el is not None
        else []
    )
    categories: list[str] = []
    for c in (_text(meta, f"{ARXIV}categories") or "").split():
        if c not in categories:
            categories.append(c)  # arXiv lists the primary category first
    created = parse_date(_text(meta, f"{ARXIV}created"))
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        source=SOURCE,
        abstract=abstract,
        authors=authors,
        categories=categories,
        version=version,
        versions=[{"version": 1, "created": created.isoformat()}] if created else [],
        published=created,
        updated=parse_date(_text(meta, f"{ARXIV}updated")) or created,
        comments=comments,
        journal_ref=_text(meta, f"{ARXIV}journal-ref"),
        doi=_text(meta, f"{ARXIV}doi"),
        license=_text(meta, f"{ARXIV}license"),
        # code_url stays None: a URL found in the abstract/comments is the catalog's fallback
        # (papers.upsert_records runs find_code_url), so it never overrides a source-given repo.
    )


def parse_list_records(body: bytes | str, *, where: str = "page") -> OaiPage:
    """Parse one ListRecords response. noRecordsMatch is an empty last page; other OAI errors
    raise OaiError; bad XML raises MalformedPage; bad records become Rejected."""
    try:
        root = ElementTree.fromstring(body)
    except ParseError as exc:
        raise MalformedPage(f"{where}: bad XML: {exc}") from exc
    if root.tag != f"{OAI}OAI-PMH":
        raise MalformedPage(f"{where}: not an OAI-PMH response (root <{root.tag}>)")
    error = root.find(f"{OAI}error")
    if error is not None:
        code = error.get("code", "unknown")
        if code == "noRecordsMatch":
            return OaiPage()
        raise OaiError(code, clean_text(error.text) or "(no message)")
    page = OaiPage()
    list_el = root.find(f"{OAI}ListRecords")
    if list_el is None:
        raise MalformedPage(f"{where}: no <ListRecords> element")
    for i, rec in enumerate(list_el.findall(f"{OAI}record"), start=1):
        header = rec.find(f"{OAI}header")
        if header is not None and header.get("status") == "deleted":
            continue  # withdrawn from the repository: nothing to catalog
        meta = rec.find(f"{OAI}metadata/{ARXIV}arXiv")
        ident = _text(header, f"{OAI}identifier") if header is not None else None
        if meta is None:
            page.items.append(Rejected(f"record {i} of {where}", f"{ident}: no arXiv metadata"))
            continue
        try:
            page.items.append(parse_arxiv_metadata(meta))
        except ValueError as exc:
            page.items.append(Rejected(f"record {i} of {where}", str(exc)))
    token_el = list_el.find(f"{OAI}resumptionToken")
    if token_el is not None:
        page.token = (token_el.text or "").strip() or None
        for attr, name in (("cursor", "cursor"), ("completeListSize", "complete_list_size")):
            value = token_el.get(attr)
            if value and value.isdigit():
                setattr(page, name, int(value))
    return page


def harvest_key(
    url: str, date_from: dt.date | None, date_until: dt.date | None, set_spec: str | None
) -> str:
    """The ingest_state key of one harvest: its endpoint and arguments."""
    return f"oai|{url}|{METADATA_PREFIX}|{date_from or ''}|{date_until or ''}|{set_spec or ''}"


def list_records(
    fetcher: Fetcher,
    url: str,
    *,
    date_from: dt.date | None = None,
    date_until: dt.date | None = None,
    set_spec: str | None = None,
    token: str | None = None,
    checkpoint_key: str | None = None,
    done: int = 0,
) -> Iterator[Item]:
    """Every record of the harvest, page by page; after each page a Checkpoint holding the
    next resumption token (start from `token` to resume). A page of bad XML is rejected and
    ends the harvest (the token to go on is inside it); the last checkpoint stays valid."""
    page_no = 0
    while True:
        page_no += 1
        if token:
            params = {"verb": "ListRecords", "resumptionToken": token}
        else:
            params = {"verb": "ListRecords", "metadataPrefix": METADATA_PREFIX}
            if date_from:
                params["from"] = date_from.isoformat()
            if date_until:
                params["until"] = date_until.isoformat()
            if set_spec:
                params["set"] = set_spec
        where = f"page {page_no}" + (f" (resumptionToken {token})" if token else "")
        resp = fetcher.get(url, params)
        if resp.status_code >= 400 and b"<OAI-PMH" not in resp.content[:1000]:
            raise SourceError(f"{where}: HTTP {resp.status_code} from {url}")
        try:
            page = parse_list_records(resp.content, where=where)
        except MalformedPage as exc:
            yield Rejected(where, f"{exc}; rerun to retry from the last checkpoint")
            return
        yield from page.items
        done += len(page.items)
        total = page.complete_list_size
        if not page.token:
            yield Checkpoint(checkpoint_key, None, done=done, total=total or done)
            return
        token = page.token
        state = {"token": token, "done": done, "complete_list_size": total}
        yield Checkpoint(checkpoint_key, state, done=done, total=total)
