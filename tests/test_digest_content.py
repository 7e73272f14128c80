"""What each subscriber gets: trending, "For you" with reasons, headers, weekends, no repeats."""

from __future__ import annotations

import datetime as dt
from html import unescape

from sqlalchemy import select, text

from digest_support import (
    MONDAY,
    SATURDAY,
    SUNDAY,
    TOKEN_IN_URL,
    add_paper,
    add_subscriber,
    add_user,
    follow,
    smtp_settings,
    upvote,
    week_of_papers,
)
from paperfeed import db, subscriptions
from paperfeed.digest import Edition, load_edition, load_profiles, select_items
from paperfeed.digest_send import send_edition
from paperfeed.models import DigestPaper, Subscriber
from smtp_sink import Sink


def _personal_setup(conn):
    trending = [
        add_paper(conn, f"2405.1000{i}", f"Hot paper {i}", featured=MONDAY, upvotes=100 - i)
        for i in range(6)
    ]
    ids = {
        "search": add_paper(
            conn,
            "2405.20001",
            "Faster LLM inference",
            abstract="We study speculative decoding for large models.",
            featured=MONDAY,
            upvotes=1,
        ),
        "author": add_paper(
            conn,
            "2405.20002",
            "Energy-based models revisited",
            authors=("Yann LeCun", "Someone Else"),
            featured=MONDAY,
            upvotes=2,
        ),
        "category": add_paper(
            conn,
            "2405.20003",
            "Parsing with grammars",
            categories=("cs.CL",),
            featured=MONDAY,
        ),
        "similar": add_paper(
            conn,
            "2405.20004",
            "A close cousin",
            featured=MONDAY,
            vector=[0.9, 0.1, 0.0],
        ),
        "unrelated": add_paper(
            conn,
            "2405.20005",
            "Far away topic",
            featured=MONDAY,
            vector=[0.0, 0.0, 1.0],
        ),
    }
    liked = add_paper(conn, "2401.00001", "Old favourite", featured=None, vector=[1.0, 0.0, 0.0])
    uid = add_user(conn, "reader")
    follow(conn, uid, "author", "yann lecun")
    follow(conn, uid, "category", "cs.CL")
    upvote(conn, uid, liked)
    sid = add_subscriber(
        conn, "reader@example.org", user_id=uid, searches=("speculative decoding",)
    )
    plain = add_subscriber(conn, "plain@example.org")
    return trending, ids, sid, plain


def test_for_you_items_carry_reasons(engine, settings):
    with db.transaction(engine) as conn:
        trending, ids, sid, plain = _personal_setup(conn)
    with db.read(engine) as conn:
        data = load_edition(conn, Edition("daily", MONDAY))
        from paperfeed.digest import VectorCache

        vectors = VectorCache(data.model)
        profiles = load_profiles(conn, data, [sid, plain])
        vectors.load(conn, profiles[0].upvoted)
    items = select_items(settings, data, profiles[0], None, vectors)
    reasons = {i.paper_id: i.reason for i in items if i.section == "for_you"}
    assert reasons == {
        ids["search"]: "matches your saved search 'speculative decoding'",
        ids["author"]: "by Yann LeCun, whom you follow",
        ids["category"]: "in cs.CL, which you follow",
        ids["similar"]: "similar to papers you upvoted",
    }
    assert [i.paper_id for i in items if i.section == "trending"] == trending[:5]
    # Someone without preferences gets the same trending list and nothing else.
    plain_items = select_items(settings, data, profiles[1], None, vectors)
    assert [(i.section, i.paper_id) for i in plain_items] == [("trending", p) for p in trending[:5]]


def test_digest_message_headers_links_and_parts(engine, settings):
    with db.transaction(engine) as conn:
        _, _ids, sid, _ = _personal_setup(conn)
    with Sink() as sink:
        s = smtp_settings(settings, sink.port)
        report = send_edition(engine, s, Edition("daily", MONDAY))
        assert report.sent == 2
        received = {m.recipient: m for m in sink.handler.messages}
    msg = received["reader@example.org"].parse()
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Message-ID"] == f"<digest.daily.20240506.{sid}@papers.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = (part.strip(" <>") for part in str(msg["List-Unsubscribe"]).split(","))
    assert https.startswith("https://papers.example.org/unsubscribe/")
    assert mailto.startswith("mailto:digest@papers.example.org?subject=unsubscribe%20")
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (plain, unescape(html)):
        assert "Matches your saved search 'speculative decoding'" in body
        assert "By Yann LeCun, whom you follow" in body
        assert "https://papers.example.org/papers/2405.20001" in body
        assert https in body  # the visible unsubscribe link is the header's
    assert "<link" not in html and "src=" not in html  # no external assets
    assert "style=" in html  # inline CSS

    # Every signed link in the message works for this subscriber.
    tokens = TOKEN_IN_URL.findall(plain)
    feedback = [t for t in tokens if _is(s, t)]
    assert len(feedback) == 2 * 9  # more/less for 4 for-you + 5 trending
    with db.transaction(engine) as conn:
        result = subscriptions.record_feedback(conn, s, feedback[1])
        assert result.signal == -1
        assert subscriptions.unsubscribe(conn, s, https.rsplit("/", 1)[1]) == "reader@example.org"


def _is(settings, token):
    try:
        subscriptions.read_token(settings, "feedback", token)
    except subscriptions.TokenError:
        return False
    return True


def test_weekend_has_no_daily_edition_and_weekly_covers_the_week(engine, settings):
    with db.transaction(engine) as conn:
        ids = week_of_papers(conn)
        add_subscriber(conn, "d@example.org")
        add_subscriber(conn, "w@example.org", frequency="weekly")
    with Sink() as sink:
        s = smtp_settings(settings, sink.port)
        for day in (SATURDAY, SUNDAY):
            report = send_edition(engine, s, Edition("daily", day))
            assert report.no_edition and report.sent == 0
        assert sink.handler.messages == []
        friday = send_edition(engine, s, Edition("daily", MONDAY + dt.timedelta(days=4)))
        assert friday.sent == 1 and friday.planned == 1  # only the daily subscriber
        weekly = send_edition(engine, s, Edition("weekly", SUNDAY))
        assert weekly.sent == 1
        by = sink.handler.by_recipient()
    body = by["w@example.org"][0].parse().get_body(("plain",)).get_content().replace("\r\n", "\n")
    # The week's best: the top 10 by upvotes across Monday..Friday (all ten here).
    assert all(f"Paper {n}\n" in body for n in range(10))
    assert body.index("Paper 9\n") < body.index("Paper 0\n")
    with db.read(engine) as conn:
        sent = conn.execute(select(DigestPaper.paper_id)).scalars().all()
    assert len(sent) == 2 + 10 and set(ids.values()) <= set(sent)


def test_never_the_same_paper_twice_and_no_empty_issue(engine, settings):
    with db.transaction(engine) as conn:
        week_of_papers(conn)
        add_subscriber(conn, "x@example.org")
    with Sink() as sink:
        s = smtp_settings(settings, sink.port)
        assert send_edition(engine, s, Edition("daily", MONDAY)).sent == 1
        # Switching to weekly: Monday's papers were already sent, the rest of the week is new.
        with db.transaction(engine) as conn:
            conn.execute(text("UPDATE subscribers SET frequency = 'weekly'"))
        assert send_edition(engine, s, Edition("weekly", SUNDAY)).sent == 1
        body = (
            sink.handler.messages[1]
            .parse()
            .get_body(("plain",))
            .get_content()
            .replace("\r\n", "\n")
        )
        assert "Paper 0\n" not in body and "Paper 1\n" not in body and "Paper 2\n" in body
        # A later weekly edition over the same days has nothing new: no empty issue is sent.
        report = send_edition(engine, s, Edition("weekly", SUNDAY + dt.timedelta(days=1)))
        assert report.sent == 0 and report.skipped == 1
        assert len(sink.handler.messages) == 2


def test_not_interested_excludes_similar_and_more_like_this_counts(engine, settings):
    with db.transaction(engine) as conn:
        a = add_paper(conn, "2405.30001", "Topic A one", featured=MONDAY, vector=[1, 0, 0])
        a2 = add_paper(conn, "2405.30002", "Topic A two", featured=MONDAY, vector=[0.95, 0.05, 0])
        b = add_paper(conn, "2405.30003", "Topic B", featured=MONDAY, vector=[0, 1, 0])
        old_b = add_paper(conn, "2401.30004", "Old B", featured=None, vector=[0, 0.9, 0.1])
        sid = add_subscriber(conn, "f@example.org", sections=["for_you"])
    s = settings
    with db.transaction(engine) as conn:
        subscriptions.record_feedback(conn, s, subscriptions.feedback_token(s, sid, a, -1))
        subscriptions.record_feedback(conn, s, subscriptions.feedback_token(s, sid, old_b, 1))
    from paperfeed.digest import VectorCache

    with db.read(engine) as conn:
        data = load_edition(conn, Edition("daily", MONDAY))
        (profile,) = load_profiles(conn, data, [sid])
        vectors = VectorCache(data.model)
        vectors.load(conn, profile.upvoted | profile.disliked)
        assert conn.execute(select(Subscriber.status)).scalar_one() == "active"
    items = select_items(s, data, profile, None, vectors)
    chosen = {i.paper_id: i.reason for i in items}
    assert chosen == {b: "similar to papers you upvoted"}  # a disliked, a2 too close to it
    assert a2 not in chosen


def test_saved_searches_go_through_the_search_index(engine, settings):
    from paperfeed.digest import catalog_search
    from paperfeed.search import index_pending

    with db.transaction(engine) as conn:
        _trending, ids, _sid, _plain = _personal_setup(conn)
    with db.read(engine) as conn:
        if engine.dialect.name == "postgresql":  # PostgreSQL's full-text index is never behind
            run = catalog_search(conn, settings)
            assert run is not None
            assert ids["search"] in run("speculative decoding")[:3]
        else:
            assert catalog_search(conn, settings) is None  # no index yet: the fallback is used
    index_pending(engine, settings)
    with db.read(engine) as conn:
        run = catalog_search(conn, settings)
        assert run is not None
        assert ids["search"] in run("speculative decoding")[:3]
