"""RSS/Atom/OPML/BibTeX exports: valid per feedparser and a structural check of the specs."""

import datetime as dt
import email.utils
import re

import feedparser
import pytest
from defusedxml import ElementTree as SafeET
from sqlalchemy import insert

from paperfeed import db, papers
from paperfeed.models import Collection, CollectionItem, Follow, Paper, User
from paperfeed.sources import PaperRecord

A = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@pytest.fixture
def catalog(engine):
    recs = [
        PaperRecord(
            arxiv_id=f"2405.0000{i}",
            title=f"Paper {i}: <b>bold</b> & $\\alpha$",
            source="test",
            abstract=f"Abstract {i} with a control char \x0b and <tags>.",
            authors=["Ada Lovelace", "Alan Turing"] if i != 3 else [],
            categories=["cs.CL", "cs.LG"],
            upvotes=i * 10,
            num_comments=i,
            featured_date=dt.date(2024, 5, 27) if i != 1 else dt.date(2024, 5, 24),
            published=dt.date(2024, 5, 20),
            code_url="https://github.com/a/b" if i == 2 else None,
            code_stars=120 if i == 2 else None,
        )
        for i in (1, 2, 3)
    ]
    recs.append(
        PaperRecord(
            arxiv_id="2405.00009",
            title="By Ádá",
            source="test",
            authors=["Ádá Lóvelace"],
            published=dt.date(2024, 1, 2),
        )
    )
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, recs)
        uid = conn.execute(
            insert(User).values(username="grace", email="g@example.org", password_hash="x")
        ).inserted_primary_key[0]
        pub = conn.execute(
            insert(Collection).values(
                user_id=uid, name="Reading list", slug="reading", is_public=True
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(Collection).values(user_id=uid, name="Secret", slug="secret", is_public=False)
        )
        pids = dict(
            conn.execute(Paper.__table__.select().with_only_columns(Paper.arxiv_id, Paper.id)).all()
        )
        conn.execute(
            insert(CollectionItem), [{"collection_id": pub, "paper_id": pids["2405.00002"]}]
        )
        conn.execute(
            insert(Follow),
            [
                {"user_id": uid, "kind": "author", "value": "ada lovelace"},
                {"user_id": uid, "kind": "category", "value": "cs.CL"},
            ],
        )
    return engine


def check_atom(body: bytes):
    """RFC 4287 §4.1: the elements a feed and each entry must have, once, in valid forms."""
    root = SafeET.fromstring(body)
    assert root.tag == f"{A}feed"
    for tag in ("id", "title", "updated"):
        assert len(root.findall(f"{A}{tag}")) == 1, tag
    assert RFC3339.match(root.find(f"{A}updated").text)
    assert root.find(f"{A}link[@rel='self']") is not None
    feed_has_author = root.find(f"{A}author/{A}name") is not None
    for entry in root.findall(f"{A}entry"):
        for tag in ("id", "title", "updated"):
            assert len(entry.findall(f"{A}{tag}")) == 1, tag
        assert RFC3339.match(entry.find(f"{A}updated").text)
        assert feed_has_author or entry.find(f"{A}author/{A}name") is not None
        alternates = entry.findall(f"{A}link[@rel='alternate']")
        assert len(alternates) == 1  # at most one alternate per type and hreflang
        assert entry.find(f"{A}summary").get("type") == "text"
        assert entry.find(f"{A}id").text.startswith("http")
    return root


def check_rss(body: bytes):
    """RSS 2.0: channel title/link/description; items with title or description; RFC 822 dates."""
    root = SafeET.fromstring(body)
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    for tag in ("title", "link", "description"):
        assert channel.find(tag) is not None and channel.find(tag).text, tag
    assert email.utils.parsedate_to_datetime(channel.find("lastBuildDate").text)
    for item in channel.findall("item"):
        assert item.find("title") is not None or item.find("description") is not None
        assert email.utils.parsedate_to_datetime(item.find("pubDate").text)
        assert item.find("guid").get("isPermaLink") == "true"
        assert all(
            el.tag in ("title", "link", "description", "category", "guid", "pubDate", "enclosure")
            or el.tag.startswith(DC)
            for el in item
        )
    return root


def parse_ok(body: bytes):
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


FEEDS = [
    "/papers/feed.atom",
    "/papers/feed.rss",
    "/papers/date/2024-05-27/feed.atom",
    "/papers/week/2024-W22/feed.rss",
    "/papers/month/2024-05/feed.atom",
    "/papers/trending/feed.atom",
    "/papers/trending/feed.rss?window=all",
    "/papers/trending?window=month&format=atom",
    "/authors/Ada%20Lovelace/feed.atom",
    "/authors/ada%20lovelace/feed.rss",
    "/authors/Ada%20Lovelace?format=rss",
    "/collections/grace/reading/feed.atom",
    "/collections/grace/reading/feed.rss",
    "/papers/category/cs.CL/feed.atom",
]


@pytest.mark.parametrize("url", FEEDS)
def test_feeds_are_valid(client, catalog, url):
    r = client.get(url)
    assert r.status_code == 200, r.text
    parsed = parse_ok(r.content)
    if "atom" in r.headers["content-type"]:
        assert parsed.version == "atom10"
        check_atom(r.content)
    else:
        assert parsed.version == "rss20"
        check_rss(r.content)
    assert parsed.entries, url


def test_entries_carry_title_authors_abstract_and_links(client, catalog):
    atom = parse_ok(client.get("/papers/date/2024-05-27/feed.atom").content)
    rss = parse_ok(client.get("/papers/date/2024-05-27/feed.rss").content)
    assert [e.title for e in atom.entries] == [e.title for e in rss.entries]
    top = atom.entries[0]
    assert top.title == "Paper 3: <b>bold</b> & $\\alpha$"  # most upvoted first, text intact
    second = atom.entries[1]
    assert [a.name for a in second.authors] == ["Ada Lovelace", "Alan Turing"]
    assert second.summary.startswith("Abstract 2 with a control char  and <tags>")
    hrefs = {link.href for link in second.links}
    assert {
        "http://127.0.0.1:8000/papers/2405.00002",
        "https://arxiv.org/abs/2405.00002",
        "https://arxiv.org/pdf/2405.00002",
        "https://github.com/a/b",
    } <= hrefs
    assert [t.term for t in second.tags] == ["cs.CL", "cs.LG"]
    rss_item = rss.entries[1]
    assert rss_item.link == "http://127.0.0.1:8000/papers/2405.00002"
    assert "Ada Lovelace" in rss_item.author


def test_author_page_lists_every_spelling_and_links_feeds(client, catalog):
    r = client.get("/authors/ada%20lovelace")
    assert r.status_code == 200
    assert 'type="application/atom+xml"' in r.text and "/feed.atom" in r.text
    assert "By Ádá" in r.text and "Paper 1" in r.text  # accents folded into one author key
    assert client.get("/authors/Nobody%20Here").status_code == 404


def test_private_and_missing_collections_have_no_feed(client, catalog):
    assert client.get("/collections/grace/secret/feed.atom").status_code == 404
    assert client.get("/collections/nobody/reading/feed.atom").status_code == 404


def test_conditional_get_etag_and_last_modified(client, catalog):
    url = "/papers/date/2024-05-27/feed.atom"
    r = client.get(url)
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    before = email.utils.format_datetime(
        email.utils.parsedate_to_datetime(modified) - dt.timedelta(seconds=1), usegmt=True
    )
    assert client.get(url, headers={"If-Modified-Since": before}).status_code == 200
    assert client.get(url, headers={"If-Modified-Since": "garbage"}).status_code == 200
    # If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2).
    both = {"If-None-Match": '"stale"', "If-Modified-Since": modified}
    assert client.get(url, headers=both).status_code == 200
    # A change to the listing changes the validators.
    with db.transaction(catalog) as conn:
        papers.upsert_records(
            conn,
            [PaperRecord(arxiv_id="2405.00002", title="Renamed", source="test", version=9)],
        )
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 200


def test_pages_advertise_their_feeds(client, catalog):
    assert 'href="/papers/date/2024-05-27/feed.atom"' in client.get("/papers").text
    trending = client.get("/papers/trending").text
    assert 'href="/papers/trending/feed.atom"' in trending
    search = client.get("/papers", params={"q": "graph neural"}).text
    assert 'href="/papers/feed.atom?q=graph%20neural"' in search


def test_bibtex_exports_of_listings(client, catalog):
    for url in (
        "/papers/date/2024-05-27/feed.bib",
        "/papers/trending/feed.bib?window=all",
        "/papers/trending?format=bibtex",
        "/authors/Ada%20Lovelace/feed.bib",
        "/collections/grace/reading/feed.bib",
    ):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith("application/x-bibtex")
        assert r.text.count("@misc{") >= 1
        assert r.text.count("{") == r.text.count("}")
    day = client.get("/papers/date/2024-05-27/feed.bib").text
    assert day.count("@misc{") == 2 and "eprint = {2405.00002}" in day


def test_site_and_user_opml(client, catalog):
    site = SafeET.fromstring(client.get("/feeds.opml").content)
    assert site.get("version") == "2.0"
    urls = [o.get("xmlUrl") for o in site.iter("outline") if o.get("xmlUrl")]
    assert "http://127.0.0.1:8000/papers/feed.atom" in urls
    assert "http://127.0.0.1:8000/papers/trending/feed.atom?window=day" in urls
    for url in urls:  # every advertised feed exists and is valid
        path = url.removeprefix("http://127.0.0.1:8000")
        parse_ok(client.get(path).content)
    user = client.get("/users/grace/feeds.opml")
    assert user.status_code == 200
    outlines = {o.get("title"): o for o in SafeET.fromstring(user.content).iter("outline")}
    assert "Papers by Ada Lovelace" in outlines
    assert "Papers in cs.CL" in outlines
    assert "Reading list" in outlines and "Secret" not in outlines
    for o in outlines.values():
        if o.get("xmlUrl"):
            r = client.get(o.get("xmlUrl").removeprefix("http://127.0.0.1:8000"))
            assert r.status_code == 200, o.get("xmlUrl")
            parse_ok(r.content)
    assert client.get("/users/nobody/feeds.opml").status_code == 404


def test_unknown_feed_formats_and_periods_are_404s(client, catalog):
    assert client.get("/papers/date/2024-05-27/feed.json").status_code in (404, 422)
    assert client.get("/papers/date/not-a-date/feed.atom").status_code == 404
    assert client.get("/papers/trending?window=year").status_code == 422
