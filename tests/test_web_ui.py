"""Server-side parts of the web UI: sharing tags, conditional KaTeX, links only to real routes."""

import datetime as dt

from paperfeed import db, papers
from paperfeed.sources import PaperRecord


def _load(engine, **kw):
    rec = PaperRecord(
        arxiv_id=kw.pop("arxiv_id", "2405.00001"),
        title=kw.pop("title", "Plain title"),
        source="test",
        abstract=kw.pop("abstract", "No math here."),
        authors=["Ada Lovelace"],
        featured_date=dt.date(2024, 5, 27),
        **kw,
    )
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, [rec])


def test_paper_page_has_open_graph_and_citation_tags(client, engine):
    _load(engine, upvotes=7)
    html = client.get("/papers/2405.00001").text
    assert '<meta property="og:type" content="article">' in html
    assert '<meta property="og:title" content="Plain title · paperfeed">' in html
    assert '<meta name="citation_author" content="Ada Lovelace">' in html
    assert '<link rel="canonical" href="http://127.0.0.1:8000/papers/2405.00001">' in html


def test_katex_loads_only_when_there_is_math(client, engine):
    _load(engine)
    _load(engine, arxiv_id="2405.00002", abstract=r"We bound $\epsilon$ tightly.")
    assert "katex.min.js" not in client.get("/papers/2405.00001").text
    assert "katex.min.js" in client.get("/papers/2405.00002").text


def test_vote_count_is_fixed_width_and_cards_are_keyboard_targets(client, engine):
    _load(engine, upvotes=12)
    html = client.get("/papers").text
    assert 'class="count"' in html and ">12<" in html
    assert "data-card-link" in html
    css = client.get("/static/app.css").text
    assert "tabular-nums" in css and "prefers-color-scheme: dark" in css


def test_links_only_to_routes_that_exist(client, engine):
    _load(engine)
    html = client.get("/papers").text
    has_route = client.app.state.templates.env.globals["has_route"]
    assert has_route("/papers/trending") and has_route("/papers/{arxiv_id:path}")
    assert not has_route("/no/such/page")
    for path, label in [("/papers/trending", ">Trending<"), ("/signin", ">Sign in<")]:
        assert (label in html) == has_route(path)
    assert client.get("/papers/trending").status_code == 200
