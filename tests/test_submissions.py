"""Submitting papers by arXiv id/URL against a loopback arXiv API serving recorded responses."""

from __future__ import annotations

import datetime as dt

from conftest import csrf
from paperfeed import db, papers


def _submit(c, text):
    return c.post(
        "/papers/submit", data={"arxiv_id": text, "csrf_token": csrf(c)}, follow_redirects=False
    )


def test_new_paper_is_fetched_featured_and_credited(user_client, arxiv_server, engine, client):
    c = user_client("ada")
    assert c.get("/papers/submit?arxiv_id=1605.08386").status_code == 200
    r = _submit(c, "https://arxiv.org/abs/1605.08386v1")
    assert r.status_code == 303 and r.headers["location"] == "/papers/1605.08386"
    with db.read(engine) as conn:
        row = papers.get_paper(conn, "1605.08386")
    assert row.title == "Heat-bath random walks with Markov bases"
    assert row.authors == ["Caprice Stanley", "Tobias Windisch"]
    assert row.categories[0] == "math.CO" and row.version == 1
    assert row.featured_date == dt.datetime.now(dt.UTC).date()
    front = client.get("/papers").text
    assert (
        "Heat-bath random walks" in front and 'Submitted by <a href="/users/ada">ada</a>' in front
    )
    assert "Heat-bath" in client.get("/users/ada").text
    assert 'Submitted by <a href="/users/ada">' in client.get("/papers/1605.08386").text


def test_old_style_id(user_client, arxiv_server, engine):
    c = user_client("bob")
    r = _submit(c, "astro-ph/0601001")
    assert r.status_code == 303 and r.headers["location"] == "/papers/astro-ph/0601001"
    assert c.get("/papers/astro-ph/0601001").status_code == 200


def test_known_paper_is_featured_once_without_fetching(user_client, arxiv_server, engine, paper):
    from paperfeed.sources import PaperRecord

    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn, [PaperRecord(arxiv_id="2405.00009", title="Unfeatured", source="t")]
        )
    c = user_client("carol")
    r = _submit(c, "arXiv:2405.00009")
    assert r.status_code == 303 and r.headers["location"] == "/papers/2405.00009"
    r = _submit(c, "2405.00001")  # already featured: just its page
    assert r.headers["location"] == "/papers/2405.00001"
    assert arxiv_server["requests"] == 0
    with db.read(engine) as conn:
        assert papers.get_paper(conn, "2405.00009").featured_date == dt.datetime.now(dt.UTC).date()
        assert papers.get_paper(conn, "2405.00001").featured_date == dt.date(2024, 5, 27)
        assert papers.get_paper(conn, "2405.00001").submitted_by_id is None


def test_clear_messages_for_nonsense_unknown_and_network_failure(user_client, arxiv_server, engine):
    c = user_client("dave")
    r = _submit(c, "not an id <b>")
    assert r.status_code == 400 and "is not an arXiv id" in r.text and "<b>" not in r.text
    r = _submit(c, "0000.00000")
    assert r.status_code == 400 and "arXiv has no paper with the id 0000.00000" in r.text
    arxiv_server["fail"] = True
    r = _submit(c, "1605.08386")
    assert (
        r.status_code == 502 and "could not be reached" in r.text and "Nothing was saved" in r.text
    )
    with db.read(engine) as conn:
        assert papers.get_paper(conn, "1605.08386") is None


def test_unreachable_arxiv_host(user_client, settings, engine):
    settings.arxiv_api_url = "http://127.0.0.1:9/api/query"  # discard port: connection refused
    c = user_client("erin")
    r = _submit(c, "1605.08386")
    assert r.status_code == 502 and "ConnectError" in r.text


def test_daily_limit_and_verification_required(user_client, arxiv_server, settings):
    settings.submit_daily_limit = 2
    c = user_client("frank")
    assert _submit(c, "1605.08386").status_code == 303
    assert _submit(c, "1605.08386").status_code == 303
    r = _submit(c, "1605.08386")
    assert r.status_code == 429 and "limit of 2 submissions" in r.text
    unverified = user_client("gina", verified=False)
    r = _submit(unverified, "1605.08386")
    assert r.status_code == 400 and "Verify your email" in r.text


def test_signed_out_submit_goes_to_sign_in(client):
    r = client.get("/papers/submit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=/papers/submit"


def test_api_submit_with_token(user_client, arxiv_server, client):
    c = user_client("hank")
    page = c.post("/settings/tokens", data={"name": "t", "csrf_token": csrf(c)}).text
    token = page.split('id="new-token">')[1].split("<")[0]
    auth = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/papers/submit", json={"arxiv_id": "1605.08386"}, headers=auth)
    assert r.status_code == 200
    assert r.json() == {
        "arxiv_id": "1605.08386",
        "created": True,
        "featured": True,
        "url": "/papers/1605.08386",
    }
    r = client.post("/api/papers/submit", json={"arxiv_id": "nonsense"}, headers=auth)
    assert r.status_code == 400 and "not an arXiv id" in r.json()["error"]["message"]
    r = client.post("/api/papers/submit", json={}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["status"] == 422
