import datetime as dt

import pytest

from paperfeed import db, papers
from paperfeed.sources import PaperRecord


@pytest.fixture
def catalog(engine):
    recs = [
        PaperRecord(
            arxiv_id=f"2405.{i:05d}",
            title=f"Paper {i}",
            source="test",
            authors=["Ada Lovelace"],
            categories=["cs.CL"] if i % 2 else ["cs.CV"],
            upvotes=i,
            featured_date=dt.date(2024, 5, 27) if i <= 6 else dt.date(2024, 5, 20),
            published=dt.date(2024, 5, 1) + dt.timedelta(days=i),
        )
        for i in range(1, 11)
    ]
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, recs)
    return engine


def walk(client, url, **params):
    items, cursor = [], None
    while True:
        r = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "*"
        body = r.json()
        assert set(body) == {"items", "next_cursor"}
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_papers_pages_by_cursor_in_every_sort(client, catalog):
    by_votes = walk(client, "/api/v1/papers", limit=3)
    assert [p["upvotes"] for p in by_votes] == list(range(10, 0, -1))
    by_date = walk(client, "/api/v1/papers", limit=4, sort="published")
    assert [p["published"] for p in by_date] == sorted(
        (p["published"] for p in by_date), reverse=True
    )
    trending = walk(client, "/api/v1/papers", limit=2, sort="trending")
    assert len(trending) == 10 and trending[0]["arxiv_id"] == "2405.00006"


def test_papers_filters(client, catalog):
    day = walk(client, "/api/v1/papers", date="2024-05-27")
    assert {p["arxiv_id"] for p in day} == {f"2405.{i:05d}" for i in range(1, 7)}
    week = walk(client, "/api/v1/papers", week="2024-W21")
    assert {p["featured_date"] for p in week} == {"2024-05-20"}
    cl = walk(client, "/api/v1/papers", category="cs.CL", month="2024-05")
    assert all(p["categories"] == ["cs.CL"] for p in cl) and len(cl) == 5


def test_trending_items_explain_themselves(client, catalog):
    items = walk(client, "/api/v1/trending", window="all", limit=4)
    assert len(items) == 10
    top = items[0]["why"]
    assert set(top) == {"votes", "comments", "code", "age_penalty", "score", "hotness"}
    assert top["score"] == pytest.approx(
        top["votes"] + top["comments"] + top["code"] - top["age_penalty"], abs=1e-3
    )
    day = walk(client, "/api/v1/trending", window="day")
    assert {p["featured_date"] for p in day} == {"2024-05-27"}


def test_one_paper_and_errors(client, catalog):
    r = client.get("/api/v1/papers/arXiv:2405.00003v2")
    assert r.status_code == 200 and r.json()["arxiv_id"] == "2405.00003"
    assert r.json()["pdf_url"] == "https://arxiv.org/pdf/2405.00003"
    missing = client.get("/api/v1/papers/2405.99999")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"status": 404, "message": "No paper '2405.99999' in this catalog."}
    }
    cursor = client.get("/api/v1/papers", params={"limit": 1}).json()["next_cursor"]
    foreign = client.get("/api/v1/trending", params={"cursor": cursor})
    assert foreign.status_code == 400 and foreign.json()["error"]["status"] == 400
    garbage = client.get("/api/v1/papers", params={"cursor": "%%%"})
    assert garbage.status_code == 400


def test_cursor_survives_inserts(client, catalog):
    first = client.get("/api/v1/papers", params={"limit": 3}).json()
    with db.transaction(catalog) as conn:
        papers.upsert_records(
            conn, [PaperRecord(arxiv_id="2405.09999", title="New", source="t", upvotes=1000)]
        )
    rest = walk(client, "/api/v1/papers", limit=3, cursor=first["next_cursor"])
    ids = [p["arxiv_id"] for p in first["items"] + rest]
    assert ids == [f"2405.{i:05d}" for i in range(10, 0, -1)]


def test_cors_only_on_reads(client, catalog):
    assert client.get("/api/v1/papers").headers["access-control-allow-origin"] == "*"
    post = client.post("/api/v1/papers")
    assert post.status_code == 405
    assert "access-control-allow-origin" not in post.headers
    assert "access-control-allow-origin" not in client.get("/papers").headers


def test_openapi_documents_every_api_endpoint(client):
    spec = client.get("/api/openapi.json").json()
    for path in (
        "/api/daily_papers",
        "/api/papers/search",
        "/api/papers/{arxiv_id}",
        "/api/v1/papers",
        "/api/v1/papers/{arxiv_id}",
        "/api/v1/trending",
    ):
        assert path in spec["paths"], path
    assert client.get("/api/docs").status_code == 200
