"""Comments: Markdown with LaTeX, threads, edit/delete own, mentions, counts, API pages."""

from __future__ import annotations

import re

from conftest import csrf
from paperfeed import db, papers
from paperfeed.comments import render_markdown


def _comment(c, body, parent=None, arxiv_id="2405.00001"):
    data = {"body": body, "csrf_token": csrf(c)}
    if parent:
        data["parent_id"] = str(parent)
    return c.post(f"/papers/{arxiv_id}/comments", data=data, follow_redirects=False)


def _num_comments(engine):
    with db.read(engine) as conn:
        return papers.get_paper(conn, "2405.00001").num_comments


def test_markdown_latex_and_mentions_render(make_user):
    html = render_markdown(
        "**bold** and $a_1 * b_2 < c$ and\n\n$$\\sum_i x_i$$\n\n# Title", {"bob": "Bob"}
    )
    assert "<strong>bold</strong>" in html
    assert "$a_1 * b_2 &lt; c$" in html and "$$\\sum_i x_i$$" in html
    assert "<h3>Title</h3>" in html and "<h1>" not in html
    assert 'href="/users/Bob"' in render_markdown("hi @bob!", {"bob": "Bob"})
    assert "<a" not in render_markdown("mail me@bob.org or `@bob`", {"bob": "Bob"})


def test_thread_reply_edit_delete_and_counts(user_client, paper, engine, client):
    ada, bob = user_client("ada"), user_client("bob")
    assert _num_comments(engine) == 2  # from the source
    r = _comment(ada, "First! See $E=mc^2$ and @bob")
    assert r.status_code == 303 and "#comment-" in r.headers["location"]
    first = int(r.headers["location"].split("#comment-")[1])
    reply = int(_comment(bob, "A *reply*", parent=first).headers["location"].split("-")[-1])
    assert _num_comments(engine) == 4
    page = client.get("/papers/2405.00001").text
    assert 'class="mention"' in page and 'href="/users/bob"' in page
    assert "<em>reply</em>" in page and 'class="replies"' in page
    card = client.get("/papers").text  # count on the card: an icon, "4", a hidden " comments"
    assert re.search(r">4(<[^>]+>)? comments<", card)

    r = ada.post(
        f"/comments/{first}/edit",
        data={"body": "Edited text", "csrf_token": csrf(ada)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get("/papers/2405.00001").text
    assert "Edited text" in page and "edited" in page
    r = ada.post(
        f"/comments/{first}/delete", data={"csrf_token": csrf(ada)}, follow_redirects=False
    )
    assert r.status_code == 303
    page = client.get("/papers/2405.00001").text
    assert "[deleted]" in page and "A <em>reply</em>" in page  # the reply stays
    assert _num_comments(engine) == 3
    bob.post(f"/comments/{reply}/delete", data={"csrf_token": csrf(bob)})
    page = client.get("/papers/2405.00001").text
    assert "[deleted]" not in page  # nothing visible left under it
    assert _num_comments(engine) == 2


def test_reply_to_other_paper_comment_refused(user_client, paper, engine):
    from paperfeed.sources import PaperRecord

    with db.transaction(engine) as conn:
        papers.upsert_records(conn, [PaperRecord(arxiv_id="2405.00002", title="Other", source="t")])
    c = user_client("carol")
    first = int(_comment(c, "hello").headers["location"].split("-")[-1])
    r = _comment(c, "cross reply", parent=first, arxiv_id="2405.00002")
    assert r.status_code == 404


def test_deep_threads_render(user_client, paper, client, settings):
    settings.comment_limit = 100
    c = user_client("dave")
    parent = None
    for i in range(30):
        r = _comment(c, f"level {i}", parent=parent)
        parent = int(r.headers["location"].split("-")[-1])
    page = client.get("/papers/2405.00001")
    assert page.status_code == 200 and "level 29" in page.text


def test_unverified_users_cannot_comment(user_client, paper):
    c = user_client("erin", verified=False)
    r = _comment(c, "hi")
    assert r.status_code == 400 and "Verify your email" in r.text


def test_comment_rate_limit(user_client, paper, settings, engine):
    settings.comment_limit = 3
    c = user_client("frank")
    assert [(_comment(c, f"c{i}")).status_code for i in range(4)] == [303, 303, 303, 429]
    assert _num_comments(engine) == 5


def test_api_comments_paginate_and_create(user_client, paper, client):
    c = user_client("gina")
    h = {"X-CSRF-Token": csrf(c)}
    ids = []
    for i in range(5):
        r = c.post("/api/papers/2405.00001/comments", json={"body": f"note {i}"}, headers=h)
        assert r.status_code == 201 and r.json()["author"] == "gina"
        ids.append(r.json()["id"])
    r = c.post(
        "/api/papers/2405.00001/comments", json={"body": "re", "parent_id": ids[0]}, headers=h
    )
    assert r.json()["parent_id"] == ids[0]
    page1 = client.get("/api/papers/2405.00001/comments?limit=4").json()
    assert [x["body_md"] for x in page1["items"]] == ["note 0", "note 1", "note 2", "note 3"]
    page2 = client.get(
        f"/api/papers/2405.00001/comments?limit=4&cursor={page1['next_cursor']}"
    ).json()
    assert [x["body_md"] for x in page2["items"]] == ["note 4", "re"] and page2[
        "next_cursor"
    ] is None
    assert client.get("/api/papers/2405.00001/comments?cursor=abc").status_code == 400
    r = c.patch(f"/api/comments/{ids[1]}", json={"body": "changed"}, headers=h)
    assert r.status_code == 200 and r.json()["body_html"] == "<p>changed</p>\n"
    assert c.delete(f"/api/comments/{ids[1]}", headers=h).status_code == 204
    assert c.patch(f"/api/comments/{ids[1]}", json={"body": "x"}, headers=h).status_code == 404
