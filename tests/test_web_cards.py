"""Cached listing cards: shared HTML from the cache, each viewer's own vote state and CSRF token.

The trending page caches its cards' viewer-independent HTML (web/cards.py) for the listing cache
TTL; these tests load it as different people while that cache holds and check that each sees
their own votes, live counts and a form that posts without JavaScript.
"""

from __future__ import annotations

import datetime as dt

import pytest

from card_html import cards, parse
from paperfeed import db, papers, votes
from paperfeed.accounts import by_name
from paperfeed.sources import PaperRecord
from paperfeed.web import cards as web_cards

IDS = ["2405.00001", "2405.00002", "2405.00003"]
TRENDING = "/papers/trending"


@pytest.fixture
def listing(engine, monkeypatch):
    """Three featured papers (3, 2, 1 upvotes) and a counter of card-HTML renders."""
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn,
            [
                PaperRecord(
                    arxiv_id=a,
                    title=f"Paper {i}",
                    source="test",
                    abstract="Text.",
                    authors=["Ada Lovelace"],
                    categories=["cs.LG"],
                    upvotes=3 - i,
                    code_url="https://github.com/example/repo",
                    featured_date=dt.date(2024, 5, 27),
                )
                for i, a in enumerate(IDS)
            ],
        )
    renders: list[int] = []
    real = web_cards.card_parts

    def counting(*args, **kwargs):
        renders.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(web_cards, "card_parts", counting)
    return renders


def _vote(engine, username: str, arxiv_id: str) -> None:
    with db.transaction(engine) as conn:
        user = by_name(conn, username)
        paper = papers.get_paper(conn, arxiv_id)
        votes.set_vote(conn, user.id, paper.id, True)


def test_each_viewer_sees_their_own_votes_on_cached_cards(client, user_client, engine, listing):
    anonymous = cards(client.get(TRENDING).text)  # fills the cache
    assert listing == [3]
    alice, bob = user_client("alice"), user_client("bob")
    _vote(engine, "alice", IDS[1])  # a vote leaves the catalog version (cache key) alone

    mine, alice_csrf = parse(alice.get(TRENDING).text)
    theirs, bob_csrf = parse(bob.get(TRENDING).text)
    again = cards(client.get(TRENDING).text)
    assert listing == [3], "the card HTML came from the cache every time"

    assert [mine[a].pressed for a in IDS] == ["false", "true", "false"]
    assert [theirs[a].pressed for a in IDS] == ["false", "false", "false"]
    # Live counts even though the rows and card HTML are cached: 2 -> 3 for everyone.
    assert [mine[a].count for a in IDS] == [3, 3, 1] == [theirs[a].count for a in IDS]
    assert [again[a].count for a in IDS] == [3, 3, 1]
    assert [anonymous[a].count for a in IDS] == [3, 2, 1]
    # Signed out: no forms, no pressed state, a sign-in link that comes back here.
    for card in (*anonymous.values(), *again.values()):
        assert card.action is None and card.pressed is None
        assert card.signin_link == "/signin?next=/papers/trending"
    # Every form carries its own session's token, never a cached one.
    assert alice_csrf and bob_csrf and alice_csrf != bob_csrf
    assert {c.fields["csrf_token"] for c in mine.values()} == {alice_csrf}
    assert {c.fields["csrf_token"] for c in theirs.values()} == {bob_csrf}
    # The shared parts are the same HTML for all three.
    assert all(mine[a].cats == ["cs.LG"] and mine[a].has_code_badge for a in IDS)


def test_upvote_form_posts_without_javascript_on_cached_cards(client, user_client, engine, listing):
    bob = user_client("bob")
    bob.get(TRENDING)  # bob's request fills the cache
    alice = user_client("alice")
    card = cards(alice.get(TRENDING).text)[IDS[2]]
    assert listing == [3]

    # Post the form exactly as rendered, as a browser without JavaScript would.
    r = alice.post(card.action, data=card.fields, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == TRENDING
    after = cards(alice.get(TRENDING).text)[IDS[2]]
    assert (after.pressed, after.count) == ("true", 2)
    assert cards(bob.get(TRENDING).text)[IDS[2]].pressed == "false"

    # Another session's form (token) is refused: tokens are per session, not per page.
    r = bob.post(card.action, data=card.fields, follow_redirects=False)
    assert r.status_code == 403
    # Posting it again toggles the vote off.
    r = alice.post(after.action, data=after.fields, follow_redirects=False)
    assert r.status_code == 303
    final = cards(alice.get(TRENDING).text)[IDS[2]]
    assert (final.pressed, final.count) == ("false", 1)
    assert listing == [3]


def test_cards_missing_from_a_cached_entry_are_rendered_now(client, engine, listing):
    """Rows and card HTML expire apart; a page never lacks a card's shared parts."""
    client.get(TRENDING)
    cache = client.app.state.listing_cache
    key = next(k for k in cache._items if k.startswith("card-parts:"))
    expires, version, parts = cache._items[key]
    some_id = next(iter(parts))
    cache._items[key] = (expires, version, {k: v for k, v in parts.items() if k != some_id})
    page = cards(client.get(TRENDING).text)
    assert listing == [3, 1]  # only the missing card was rendered again
    assert all(page[a].has_code_badge and page[a].cats == ["cs.LG"] for a in IDS)
