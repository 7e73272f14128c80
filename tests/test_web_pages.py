import datetime as dt

import pytest

from paperfeed import db, papers
from paperfeed.app import create_app
from paperfeed.sources import PaperRecord


@pytest.fixture
def catalog(engine):
    recs = [
        PaperRecord(
            arxiv_id=f"2405.0000{i}",
            title=f"Paper {i} with $\\alpha$ math",
            source="test",
            abstract="We study <script>alert(1)</script> things.",
            authors=["Ada Lovelace", "Alan Turing"],
            categories=["cs.CL"],
            upvotes=i,
            featured_date=day,
            published=dt.date(2024, 5, 20),
        )
        for i, day in [
            (1, dt.date(2024, 5, 24)),
            (2, dt.date(2024, 5, 27)),
            (3, dt.date(2024, 5, 27)),
        ]
    ]
    recs.append(PaperRecord(arxiv_id="hep-th/9901001", title="Old style", source="test"))
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, recs)
    return engine


def test_front_page_shows_latest_day_ranked_with_prev_link(client, catalog):
    r = client.get("/papers")
    assert r.status_code == 200
    html = r.text
    assert html.index("Paper 3") < html.index("Paper 2")
    assert "Paper 1" not in html
    assert 'href="/papers/date/2024-05-24"' in html  # previous skips the weekend
    assert "<script>alert(1)</script>" not in html


def test_week_and_month_pages(client, catalog):
    week = client.get("/papers/week/2024-W22")
    assert week.status_code == 200 and "Paper 2" in week.text
    month = client.get("/papers/month/2024-05")
    assert all(f"Paper {i}" in month.text for i in (1, 2, 3))
    assert client.get("/papers/week/2024-W99").status_code == 404
    assert client.get("/papers/month/nonsense").status_code == 404


def test_paper_page_has_links_bibtex_and_escapes(client, catalog):
    r = client.get("/papers/2405.00002v1")
    assert r.status_code == 200
    assert "https://arxiv.org/pdf/2405.00002" in r.text
    assert "@misc{lovelace2024paper" in r.text
    assert "&lt;script&gt;" in r.text
    assert "/static/katex/katex.min.js" in r.text
    assert client.get("/papers/hep-th/9901001").status_code == 200


def test_unknown_and_invalid_ids_get_helpful_404(client, catalog):
    r = client.get("/papers/2501.99999")
    assert r.status_code == 404
    assert "not in this catalog" in r.text and "/papers/submit?arxiv_id=2501.99999" in r.text
    r = client.get("/papers/banana")
    assert r.status_code == 404 and "is not an arXiv id" in r.text


def test_static_assets_are_local_and_cacheable(client):
    r = client.get("/static/katex/katex.min.css")
    assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
    assert "cdn" not in client.get("/static/app.js").text.lower()


def test_app_refuses_unmigrated_database(settings, tmp_path):
    from paperfeed.db import NotMigratedError

    with pytest.raises(NotMigratedError, match="paperfeed db upgrade"):
        create_app(settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/n.db"}))


def test_csrf_cookie_is_set_and_headers_present(client):
    r = client.get("/papers")
    assert "pf_csrf" in r.cookies
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_listing_pages_beyond_page_size(client, engine):
    from paperfeed.web.pages import PAGE_SIZE

    day = dt.date(2024, 6, 3)
    recs = [
        PaperRecord(
            arxiv_id=f"2406.{i:05d}", title=f"P{i}", source="t", upvotes=i, featured_date=day
        )
        for i in range(PAGE_SIZE + 5)
    ]
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, recs)
    first = client.get("/papers/date/2024-06-03")
    assert "More papers" in first.text
    assert f">P{PAGE_SIZE + 4}<" in first.text
    second = client.get("/papers/date/2024-06-03?p=2")
    assert ">P0<" in second.text
    assert f">P{PAGE_SIZE + 4}<" not in second.text
