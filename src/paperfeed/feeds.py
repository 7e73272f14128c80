"""RSS 2.0, Atom 1.0, OPML 2.0 and BibTeX renderings of any list of papers (pure functions).

Specs: Atom is RFC 4287 (https://www.rfc-editor.org/rfc/rfc4287), RSS is the RSS 2.0
specification (https://www.rssboard.org/rss-specification), OPML 2.0 is
http://opml.org/spec2.opml. Entries carry title, authors, abstract, categories and links to the
paper page, the arXiv abstract and the PDF.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paperfeed.papers import bibtex

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
ET.register_namespace("atom", ATOM_NS)
ET.register_namespace("dc", DC_NS)

FORMATS = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
    "bibtex": "application/x-bibtex; charset=utf-8",
}
GENERATOR = "paperfeed"


@dataclass(frozen=True)
class FeedInfo:
    """What a feed is about: its title, the HTML page it mirrors and its own URL."""

    title: str
    page_url: str  # absolute URL of the HTML listing
    self_url: str  # absolute URL of this feed document
    description: str
    updated: dt.datetime | None = None  # naive UTC; defaults to the newest entry


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _rfc3339(value: dt.datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day)


def entry_updated(paper: Any) -> dt.datetime:
    """When an entry last changed (the row's modified_at), naive UTC, whole seconds."""
    stamp = paper.modified_at or paper.created_at or dt.datetime(1970, 1, 1)
    return stamp.replace(microsecond=0)


def entry_published(paper: Any) -> dt.datetime | None:
    day = paper.featured_date or paper.published
    return _day(day) if day else None


def last_modified(info: FeedInfo, papers: Sequence[Any]) -> dt.datetime:
    """The feed's modification time: the given one, else the newest entry's (naive UTC)."""
    if info.updated is not None:
        return info.updated.replace(microsecond=0)
    stamps = [entry_updated(p) for p in papers]
    return max(stamps) if stamps else dt.datetime(1970, 1, 1)


def paper_url(base_url: str, paper: Any) -> str:
    return f"{base_url.rstrip('/')}/papers/{paper.arxiv_id}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _clean(text: str | None) -> str:
    """Drop characters XML 1.0 cannot carry (control codes sometimes found in abstracts)."""
    return "".join(
        c for c in (text or "") if c in "\t\n\r" or ("\x20" <= c <= "\ud7ff") or c >= "\ue000"
    )


def atom(info: FeedInfo, papers: Sequence[Any], base_url: str, site_name: str) -> bytes:
    """An Atom 1.0 feed document (RFC 4287)."""
    a = ""  # unqualified names under a literal default xmlns (ElementTree cannot mix otherwise)
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    _sub(feed, f"{a}id", info.self_url)
    _sub(feed, f"{a}title", _clean(info.title))
    _sub(feed, f"{a}subtitle", _clean(info.description))
    _sub(feed, f"{a}updated", _rfc3339(last_modified(info, papers)))
    _sub(feed, f"{a}link", rel="self", href=info.self_url, type="application/atom+xml")
    _sub(feed, f"{a}link", rel="alternate", href=info.page_url, type="text/html")
    # A feed-level author makes the feed valid even for entries without author names (§4.1.1).
    author = _sub(feed, f"{a}author")
    _sub(author, f"{a}name", site_name)
    _sub(author, f"{a}uri", base_url)
    _sub(feed, f"{a}generator", GENERATOR)
    for p in papers:
        entry = _sub(feed, f"{a}entry")
        url = paper_url(base_url, p)
        _sub(entry, f"{a}id", url)
        _sub(entry, f"{a}title", _clean(p.title))
        _sub(entry, f"{a}updated", _rfc3339(entry_updated(p)))
        published = entry_published(p)
        if published:
            _sub(entry, f"{a}published", _rfc3339(published))
        for name in p.authors or []:
            _sub(_sub(entry, f"{a}author"), f"{a}name", _clean(name))
        _sub(entry, f"{a}link", rel="alternate", href=url, type="text/html")
        _sub(entry, f"{a}link", rel="related", href=f"https://arxiv.org/abs/{p.arxiv_id}")
        _sub(
            entry,
            f"{a}link",
            rel="enclosure",
            href=f"https://arxiv.org/pdf/{p.arxiv_id}",
            type="application/pdf",
        )
        if p.code_url:
            _sub(entry, f"{a}link", rel="related", href=p.code_url, title="Code")
        for cat in p.categories or []:
            _sub(entry, f"{a}category", term=cat, scheme="https://arxiv.org/archive/")
        _sub(entry, f"{a}summary", _clean(p.abstract), type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def rss(info: FeedInfo, papers: Sequence[Any], base_url: str, site_name: str) -> bytes:
    """An RSS 2.0 feed document (authors as dc:creator; RSS <author> must be an e-mail)."""
    root = ET.Element("rss", {"version": "2.0"})
    channel = _sub(root, "channel")
    _sub(channel, "title", _clean(info.title))
    _sub(channel, "link", info.page_url)
    _sub(channel, "description", _clean(info.description))
    _sub(channel, f"{{{ATOM_NS}}}link", rel="self", href=info.self_url, type="application/rss+xml")
    stamp = _utc(last_modified(info, papers))
    _sub(channel, "lastBuildDate", email.utils.format_datetime(stamp, usegmt=True))
    _sub(channel, "generator", GENERATOR)
    _sub(channel, "docs", "https://www.rssboard.org/rss-specification")
    for p in papers:
        item = _sub(channel, "item")
        url = paper_url(base_url, p)
        _sub(item, "title", _clean(p.title))
        _sub(item, "link", url)
        _sub(item, "description", _clean(p.abstract))
        if p.authors:  # one dc:creator, as arXiv's own RSS does (readers show only one)
            _sub(item, f"{{{DC_NS}}}creator", _clean(", ".join(p.authors)))
        for cat in p.categories or []:
            _sub(item, "category", cat, domain="https://arxiv.org/archive/")
        _sub(item, "guid", url, isPermaLink="true")
        published = entry_published(p) or entry_updated(p)
        _sub(item, "pubDate", email.utils.format_datetime(_utc(published), usegmt=True))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def bibtex_listing(papers: Sequence[Any]) -> bytes:
    """Every paper of a listing as BibTeX @misc entries, separated by blank lines."""
    return ("\n\n".join(bibtex(p) for p in papers) + "\n").encode()


@dataclass(frozen=True)
class Outline:
    """One feed in an OPML subscription list."""

    title: str
    xml_url: str
    html_url: str


def opml(title: str, groups: Sequence[tuple[str, Sequence[Outline]]], owner: str = "") -> bytes:
    """An OPML 2.0 subscription list, one outline folder per group (empty groups left out)."""
    root = ET.Element("opml", {"version": "2.0"})
    head = _sub(root, "head")
    _sub(head, "title", _clean(title))
    _sub(head, "dateCreated", email.utils.format_datetime(dt.datetime.now(dt.UTC), usegmt=True))
    if owner:
        _sub(head, "ownerName", _clean(owner))
    _sub(head, "docs", "http://opml.org/spec2.opml")
    body = _sub(root, "body")
    for group_title, outlines in groups:
        if not outlines:
            continue
        folder = _sub(body, "outline", text=_clean(group_title))
        for o in outlines:
            _sub(
                folder,
                "outline",
                type="rss",
                text=_clean(o.title),
                title=_clean(o.title),
                xmlUrl=o.xml_url,
                htmlUrl=o.html_url,
            )
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
