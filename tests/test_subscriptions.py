"""Double opt-in, tokens, preferences, one-click unsubscribe and feedback, over real SMTP."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from digest_support import (
    MONDAY,
    TOKEN_IN_URL,
    add_paper,
    add_subscriber,
    smtp_settings,
    subscriber,
)
from paperfeed import db, mail, subscriptions
from paperfeed.digest import Edition
from paperfeed.digest_send import send_edition
from paperfeed.models import Feedback
from smtp_sink import Sink


def _subscribe(engine, settings, address):
    with db.transaction(engine) as conn:
        message = subscriptions.subscribe(conn, settings, address)
    if message is not None:
        mail.send_mail(settings, message)
    return message


def _tokens(received) -> list[str]:
    body = received.parse().get_body(("plain",)).get_content()
    return TOKEN_IN_URL.findall(body)


def test_double_opt_in_flow_over_smtp(engine, settings):
    with Sink() as sink:
        s = smtp_settings(settings, sink.port)
        with db.transaction(engine) as conn:
            add_paper(conn, "2405.00001", "Featured", featured=MONDAY, upvotes=3)
        _subscribe(engine, s, "  Reader@Example.ORG ")
        assert [m.recipient for m in sink.handler.messages] == ["reader@example.org"]
        confirmation = sink.handler.messages[0].parse()
        assert "Confirm" in confirmation["Subject"]
        assert confirmation.get_body(("html",)) is not None  # multipart text + HTML

        # Unconfirmed: the edition goes to nobody.
        report = send_edition(engine, s, Edition("daily", MONDAY))
        assert report.sent == 0
        assert len(sink.handler.messages) == 1

        (token,) = _tokens(sink.handler.messages[0])
        with db.transaction(engine) as conn:
            prefs = subscriptions.confirm(conn, s, token)
        assert prefs.status == "active"
        with db.transaction(engine) as conn:  # confirming twice is harmless
            assert subscriptions.confirm(conn, s, token).status == "active"

        report = send_edition(engine, s, Edition("daily", MONDAY))
        assert report.sent == 1
        digest = sink.handler.messages[-1].parse()
        assert digest["To"] == "reader@example.org"
        assert "Featured" in digest.get_body(("plain",)).get_content()


def test_subscribe_never_reveals_membership(engine, settings):
    s = settings
    with db.transaction(engine) as conn:
        add_subscriber(conn, "active@example.org")
    # Same public answer in every case (the edge always shows SUBSCRIBE_RESPONSE); only the
    # inbox owner sees a difference: a confirmation, or a harmless "already subscribed" note.
    new = _subscribe(engine, s, "new@example.org")
    again = _subscribe(engine, s, "new@example.org")
    active = _subscribe(engine, s, "active@example.org")
    assert "Confirm" in new["Subject"] and "Confirm" in again["Subject"]
    assert "already subscribed" in active["Subject"]
    with db.read(engine) as conn:
        assert subscriber(conn, "active@example.org").status == "active"
        assert subscriber(conn, "new@example.org").status == "pending"
    with pytest.raises(subscriptions.InvalidInput):
        _subscribe(engine, s, "not-an-address")
    with pytest.raises(subscriptions.InvalidInput):
        _subscribe(engine, s, "a@b.org\r\nBcc: victim@example.org")


def test_confirmation_mails_are_rate_limited(engine, settings):
    s = settings.model_copy(update={"digest_confirm_per_hour": 2})
    sent = [_subscribe(engine, s, "bomb@example.org") for _ in range(4)]
    assert [m is not None for m in sent] == [True, True, False, False]


def test_resubscribe_after_unsubscribe_needs_new_confirmation(engine, settings):
    with db.transaction(engine) as conn:
        sid = add_subscriber(conn, "back@example.org")
        old_confirm = subscriptions.subscriber_token(settings, "confirm", sid, "back@example.org")
        unsub = subscriptions.subscriber_token(settings, "unsubscribe", sid, "back@example.org")
    time.sleep(1.01)  # token timestamps have one-second resolution
    with db.transaction(engine) as conn:
        subscriptions.unsubscribe(conn, settings, unsub)
    # An old confirmation link cannot silently undo an unsubscribe.
    with db.transaction(engine) as conn, pytest.raises(subscriptions.TokenError):
        subscriptions.confirm(conn, settings, old_confirm)
    message = _subscribe(engine, settings, "back@example.org")
    with db.read(engine) as conn:
        assert subscriber(conn, "back@example.org").status == "pending"
    (token,) = TOKEN_IN_URL.findall(message.get_body(("plain",)).get_content())
    with db.transaction(engine) as conn:
        assert subscriptions.confirm(conn, settings, token).status == "active"


def test_tampered_expired_and_mispurposed_tokens_are_refused(engine, settings):
    with db.transaction(engine) as conn:
        sid = add_subscriber(conn, "t@example.org", status="pending")
    good = subscriptions.subscriber_token(settings, "confirm", sid, "t@example.org")
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    other_key = subscriptions.subscriber_token(
        settings.model_copy(update={"secret_key": "other"}), "confirm", sid, "t@example.org"
    )
    wrong_purpose = subscriptions.subscriber_token(settings, "unsubscribe", sid, "t@example.org")

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - settings.digest_confirm_max_age_s - 60

    expired = URLSafeTimedSerializer(
        settings.secret_key, salt="paperfeed.digest.confirm", signer=Old
    ).dumps([sid, "t@example.org"])
    for bad in (tampered, other_key, wrong_purpose, expired, "garbage", ""):
        with db.transaction(engine) as conn, pytest.raises(subscriptions.TokenError):
            subscriptions.confirm(conn, settings, bad)
    with db.transaction(engine) as conn, pytest.raises(subscriptions.TokenError, match="expired"):
        subscriptions.confirm(conn, settings, expired)
    with db.read(engine) as conn:
        assert subscriber(conn, "t@example.org").status == "pending"
    with db.transaction(engine) as conn:
        assert subscriptions.confirm(conn, settings, good).status == "active"


def test_manage_preferences_validates(engine, settings):
    with db.transaction(engine) as conn:
        sid = add_subscriber(conn, "m@example.org")
    token = subscriptions.subscriber_token(settings, "manage", sid, "m@example.org")
    good = {
        "frequency": "weekly",
        "delivery_hour": 7,
        "timezone": "Europe/Paris",
        "sections": ["for_you"],
        "saved_searches": ["speculative decoding", " ", "rlhf"],
    }
    with db.transaction(engine) as conn:
        prefs = subscriptions.update_preferences(conn, settings, token, **good)
    assert (prefs.frequency, prefs.delivery_hour, prefs.timezone) == ("weekly", 7, "Europe/Paris")
    assert prefs.saved_searches == ["speculative decoding", "rlhf"]
    for bad in (
        {"frequency": "hourly"},
        {"delivery_hour": 24},
        {"timezone": "Mars/Olympus"},
        {"sections": []},
        {"sections": ["ads"]},
        {"saved_searches": ["x" * 201]},
    ):
        with db.transaction(engine) as conn, pytest.raises(subscriptions.InvalidInput):
            subscriptions.update_preferences(conn, settings, token, **(good | bad))
    with db.read(engine) as conn:
        assert subscriptions.get_preferences(conn, sid).frequency == "weekly"


def test_unsubscribe_and_feedback_tokens(engine, settings):
    with db.transaction(engine) as conn:
        sid = add_subscriber(conn, "u@example.org")
        pid = add_paper(conn, "2405.00009", "Some paper", featured=MONDAY)
    fb = subscriptions.feedback_token(settings, sid, pid, -1)
    with db.transaction(engine) as conn:
        result = subscriptions.record_feedback(conn, settings, fb)
        subscriptions.record_feedback(
            conn, settings, subscriptions.feedback_token(settings, sid, pid, 1)
        )
    assert (result.arxiv_id, result.signal) == ("2405.00009", -1)
    with db.read(engine) as conn:
        assert conn.execute(select(Feedback.signal)).scalars().all() == [1]  # last click wins
    forged = subscriptions.make_token(settings, "feedback", [sid, pid, 5])
    with db.transaction(engine) as conn, pytest.raises(subscriptions.TokenError):
        subscriptions.record_feedback(conn, settings, forged)

    unsub = subscriptions.subscriber_token(settings, "unsubscribe", sid, "u@example.org")
    for _ in range(2):  # idempotent
        with db.transaction(engine) as conn:
            assert subscriptions.unsubscribe(conn, settings, unsub) == "u@example.org"
    with db.read(engine) as conn:
        assert subscriber(conn, "u@example.org").status == "unsubscribed"


def test_bulk_signer_tokens_are_ordinary_signed_tokens(settings):
    signer = subscriptions.BulkSigner(settings)
    signer.start_message()
    assert signer.feedback(12, 345, -1) == subscriptions.make_token(
        settings, "feedback", [12, 345, -1]
    )
    for email in ("o'brien+x@example.org", "a" * 60 + "@" + "a" * 40 + ".org"):  # escapes, zlib
        for purpose in ("unsubscribe", "manage"):
            token = signer.subscriber(purpose, 7, email)
            assert subscriptions.read_token(settings, purpose, token)[0] == [7, email]
            with pytest.raises(subscriptions.TokenError):
                subscriptions.read_token(settings, "confirm", token)
