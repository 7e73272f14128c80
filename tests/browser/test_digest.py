"""Digest in the browser: subscribe on the front page, confirm from the outbox, unsubscribe."""

from __future__ import annotations

import email
import email.policy
import re
import time


def _confirmation_link(outbox, address: str) -> str:
    """The confirmation URL from the newest mail to `address` in the Maildir outbox."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("new/*"), key=lambda p: p.stat().st_mtime, reverse=True):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address in str(msg["To"]):
                body = msg.get_body(preferencelist=("plain",)).get_content()
                return re.search(r"https?://\S+/subscribe/confirm/\S+", body).group(0)
        time.sleep(0.1)
    raise AssertionError(f"no mail to {address} in {outbox}")


def test_subscribe_confirm_and_unsubscribe(page, live_server, shoot):
    address = "digest-reader@example.org"
    page.goto("/papers")
    cta = page.locator("section.cta")
    assert "Get trending papers in your inbox" in cta.inner_text()
    cta.get_by_label("Email address").fill(address)
    cta.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state("load")
    assert "Check your inbox" in page.locator("h1").inner_text()
    link = _confirmation_link(live_server.settings.outbox_dir, address)
    page.goto(link)
    assert "You are subscribed" in page.locator("h1").inner_text()
    page.get_by_role("link", name=re.compile("Manage")).click()
    page.get_by_role("link", name="Unsubscribe").click()
    page.wait_for_url(re.compile(r"/unsubscribe/"))
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_load_state("load")
    assert "Unsubscribed" in page.locator("h1").inner_text()
    assert address in page.locator("main").inner_text()
    shoot(page, "unsubscribed")
