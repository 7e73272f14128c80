"""Digest pages over HTTP: subscribe (CSRF), confirm, manage, one-click unsubscribe, feedback."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from digest_support import (
    MONDAY,
    TOKEN_IN_URL,
    add_paper,
    add_subscriber,
    smtp_settings,
    subscriber,
)
from paperfeed import db, subscriptions
from paperfeed.app import create_app
from paperfeed.digest import Edition
from paperfeed.digest_send import send_edition
from smtp_sink import Sink

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _client(settings, engine) -> TestClient:
    return TestClient(create_app(settings, engine), base_url="http://testserver")


def test_subscribe_confirm_manage_over_http(engine, settings):
    with Sink() as sink:
        s = smtp_settings(settings, sink.port)
        with _client(s, engine) as client:
            page = client.get("/subscribe")
            token = CSRF.search(page.text).group(1)
            # Without the CSRF token: refused, nothing stored, nothing sent.
            assert client.post("/subscribe", data={"email": "w@example.org"}).status_code == 403
            assert sink.handler.messages == []
            first = client.post("/subscribe", data={"email": "w@example.org", "csrf_token": token})
            again = client.post("/subscribe", data={"email": "w@example.org", "csrf_token": token})
            assert first.status_code == again.status_code == 200
            assert first.text == again.text  # the page never tells whether it was known
            bad = client.post("/subscribe", data={"email": "nope", "csrf_token": token})
            assert bad.status_code == 400

            (confirm_token,) = TOKEN_IN_URL.findall(
                sink.handler.messages[0].parse().get_body(("plain",)).get_content()
            )
            confirmed = client.get(f"/subscribe/confirm/{confirm_token}")
            assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
            assert client.get(f"/subscribe/confirm/{confirm_token}x").status_code == 400

            manage_url = re.search(r'href="(/subscribe/manage/[^"]+)"', confirmed.text).group(1)
            form = client.get(manage_url)
            assert "w@example.org" in form.text
            saved = client.post(
                manage_url,
                data={
                    "csrf_token": token,
                    "frequency": "weekly",
                    "delivery_hour": "6",
                    "timezone": "Asia/Tokyo",
                    "sections": ["trending", "for_you"],
                    "saved_searches": "diffusion\nspeculative decoding",
                },
            )
            assert saved.status_code == 200 and "Saved." in saved.text
            invalid = client.post(
                manage_url,
                data={"csrf_token": token, "timezone": "Nowhere/Land", "sections": ["trending"]},
            )
            assert invalid.status_code == 400 and "Unknown time zone" in invalid.text
    with db.read(engine) as conn:
        sid = subscriber(conn, "w@example.org").id
        prefs = subscriptions.get_preferences(conn, sid)
    assert (prefs.frequency, prefs.timezone) == ("weekly", "Asia/Tokyo")
    assert prefs.saved_searches == ["diffusion", "speculative decoding"]


def test_one_click_unsubscribe_and_feedback_from_a_real_digest(engine, settings):
    with db.transaction(engine) as conn:
        add_paper(conn, "2405.00001", "Paper one", featured=MONDAY, upvotes=3)
        add_subscriber(conn, "u@example.org")
    with Sink() as sink:
        s = smtp_settings(settings, sink.port)
        assert send_edition(engine, s, Edition("daily", MONDAY)).sent == 1
        msg = sink.handler.messages[0].parse()
    url = str(msg["List-Unsubscribe"]).split(",")[0].strip(" <>")
    path = url.removeprefix("https://papers.example.org")
    feedback = re.findall(
        r"/digest/feedback/[A-Za-z0-9_.\-]+", msg.get_body(("plain",)).get_content()
    )
    with _client(s, engine) as client:
        more = client.get(feedback[0])
        assert more.status_code == 200 and "more papers like" in more.text
        assert client.get(feedback[0][:-3] + "abc").status_code == 400
        # GET shows a button and changes nothing (link scanners follow GETs).
        assert "<form" in client.get(path).text
        with db.read(engine) as conn:
            assert subscriber(conn, "u@example.org").status == "active"
        # RFC 8058: a cookieless POST with the one-click body, no CSRF token, no sign-in.
        fresh = TestClient(client.app, base_url="http://testserver")
        done = fresh.post(path, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "Unsubscribed" in done.text
        assert (
            fresh.post(path[:-4] + "AAAA", data={"List-Unsubscribe": "One-Click"}).status_code
            == 400
        )
    with db.read(engine) as conn:
        assert subscriber(conn, "u@example.org").status == "unsubscribed"
