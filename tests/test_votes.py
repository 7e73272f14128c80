"""Upvotes: one per user per paper, toggled by form or JSON, exact counts, sign-in invitation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import csrf
from paperfeed import db, papers


def _count(engine, arxiv_id="2405.00001"):
    with db.read(engine) as conn:
        return papers.get_paper(conn, arxiv_id).upvotes


def test_anonymous_is_invited_to_sign_in(client, paper):
    page = client.get("/papers")
    assert (
        "Sign in to upvote" in page.text and 'action="/papers/2405.00001/upvote"' not in page.text
    )
    r = client.post("/api/papers/2405.00001/upvote")
    assert r.status_code == 401 and r.json()["error"]["message"]
    r = client.post(
        "/papers/2405.00001/upvote", data={"csrf_token": csrf(client)}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=")


def test_form_toggle_without_js(user_client, paper, engine):
    c = user_client("ada")
    page = c.get("/papers")
    assert 'action="/papers/2405.00001/upvote"' in page.text and 'aria-pressed="false"' in page.text
    r = c.post(
        "/papers/2405.00001/upvote",
        data={"csrf_token": csrf(c), "next": "/papers"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/papers"
    assert _count(engine) == 4
    page = c.get("/papers")
    assert 'class="vote-btn voted"' in page.text and ">4</span>" in page.text
    c.post(
        "/papers/2405.00001/upvote", data={"csrf_token": csrf(c), "next": "https://evil.example"}
    )
    assert _count(engine) == 3


def test_json_toggle_put_delete_and_page_script(user_client, paper, engine):
    c = user_client("bob")
    h = {"X-CSRF-Token": csrf(c)}
    r = c.post("/api/papers/2405.00001/upvote", headers=h)
    assert r.status_code == 200 and r.json() == {
        "arxiv_id": "2405.00001",
        "upvoted": True,
        "upvotes": 4,
    }
    assert c.put("/api/papers/2405.00001/upvote", headers=h).json()["upvotes"] == 4  # idempotent
    assert c.post("/api/papers/arXiv:2405.00001v2/upvote", headers=h).json()["upvoted"] is False
    assert c.delete("/api/papers/2405.00001/upvote", headers=h).json()["upvotes"] == 3
    assert c.put("/api/papers/2405.00001/upvote", headers=h).json()["upvotes"] == 4
    assert _count(engine) == 4
    assert c.post("/api/papers/2501.99999/upvote", headers=h).status_code == 404
    assert c.post("/api/papers/banana/upvote", headers=h).status_code == 404
    js = c.get("/static/app.js").text
    assert "X-CSRF-Token" in js and "/upvote" in js


def test_votes_from_two_users_and_profile_privacy(user_client, paper, engine, client):
    a, b = user_client("carol"), user_client("dave")
    for c in (a, b):
        c.post("/api/papers/2405.00001/upvote", headers={"X-CSRF-Token": csrf(c)})
    assert _count(engine) == 5
    assert "Attention is a" in client.get("/users/carol").text  # upvotes public by default
    a.post("/settings/privacy", data={"csrf_token": csrf(a)})  # unchecked box: private
    assert "Upvoted" not in client.get("/users/carol").text
    assert "Upvoted" in a.get("/users/carol").text  # the owner still sees them


def test_hidden_paper_cannot_be_voted(user_client, paper, engine):
    from paperfeed import moderation

    with db.transaction(engine) as conn:
        moderation.set_paper_hidden(conn, None, "2405.00001", True)
    c = user_client("erin")
    r = c.post("/api/papers/2405.00001/upvote", headers={"X-CSRF-Token": csrf(c)})
    assert r.status_code == 404


def test_community_api_is_in_openapi(client):
    spec = client.get("/api/openapi.json").json()
    for path in (
        "/api/papers/{arxiv_id}/upvote",
        "/api/papers/{arxiv_id}/comments",
        "/api/collections",
        "/api/collections/{collection_id}",
        "/api/papers/submit",
    ):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert {"VoteOut", "CommentPage", "CollectionDetail", "SubmitOut"} <= set(schemas)
    assert "/signin" not in spec["paths"]  # pages stay out of the API document


def test_votes_and_comments_refresh_stored_hotness(user_client, paper, engine):
    def hotness():
        with db.read(engine) as conn:
            return papers.get_paper(conn, "2405.00001").hotness

    c = user_client("hotty")
    h = {"X-CSRF-Token": csrf(c)}
    before = hotness()
    c.put("/api/papers/2405.00001/upvote", headers=h)
    voted = hotness()
    assert voted > before
    c.post("/api/papers/2405.00001/comments", json={"body": "hot take"}, headers=h)
    commented = hotness()
    assert commented > voted
    c.delete("/api/papers/2405.00001/upvote", headers=h)
    assert hotness() < commented


def test_a_vote_writes_its_paper_row_once(make_user, paper, engine):
    """Count and hotness move in one UPDATE: on PostgreSQL each row version feeds the GIN
    pending lists that every keyword search reads (migration 0012, bench/vote_churn.py)."""
    from sqlalchemy import text

    from paperfeed import accounts, ranking, votes

    make_user("once")
    # A trigger logs every write of a papers row.
    setup = [
        "CREATE TABLE paper_updates (id INTEGER)",
        "CREATE TRIGGER count_paper_updates AFTER UPDATE ON papers FOR EACH ROW "
        "BEGIN INSERT INTO paper_updates VALUES (NEW.id); END",
    ]
    if engine.dialect.name == "postgresql":
        setup[1:] = [
            "CREATE FUNCTION count_paper_update() RETURNS trigger AS $$ BEGIN "
            "INSERT INTO paper_updates VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER count_paper_updates AFTER UPDATE ON papers FOR EACH ROW "
            "EXECUTE FUNCTION count_paper_update()",
        ]
    with db.transaction(engine) as conn:
        for sql in setup:
            conn.exec_driver_sql(sql)
        user_id = accounts.by_login(conn, "once").id
        paper_id = papers.get_paper(conn, "2405.00001").id
    for want, expected in (
        (True, (True, 4)),
        (True, (True, 4)),
        (False, (False, 3)),
        (None, (True, 4)),
    ):
        with db.transaction(engine) as conn:
            assert votes.set_vote(conn, user_id, paper_id, want) == expected
    with db.read(engine) as conn:
        # Three of the four calls changed the count (the repeated vote did not): three writes.
        assert conn.execute(text("SELECT count(*) FROM paper_updates")).scalar() == 3
        row = conn.execute(
            select(*ranking.HOTNESS_COLS).where(ranking.papers_t.c.id == paper_id)
        ).one()
        weights = ranking.active_weights(conn)
    assert row.upvotes == 4
    assert row.hotness == pytest.approx(ranking.breakdown_for(row, weights).hotness, abs=1e-9)
