"""Community in the browser: sign up, sign in, upvote (count changes, nothing moves), comment."""

from __future__ import annotations

import itertools
import mailbox
import re
import time

PASSWORD = "correct horse battery"
_names = itertools.count(1)


def _verification_path(outbox, address: str) -> str:
    """The /verify link of the newest mail to `address` in the Maildir outbox."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if outbox.exists():
            for msg in mailbox.Maildir(outbox, create=False):
                if address in str(msg["To"]):
                    part = msg.get_payload(0) if msg.is_multipart() else msg
                    text = part.get_payload(decode=True).decode()
                    m = re.search(r"https?://[^/\s]+(/verify[^\s]*)", text)
                    if m:
                        return m.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no verification mail to {address}")


def sign_in(page, name: str) -> None:
    page.goto("/signin")
    page.get_by_label("Username or email").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def sign_up(page, live_server) -> str:
    """Sign up, open the verification link from the outbox, sign in; returns the username."""
    name = f"reader{next(_names)}"
    page.goto("/signup")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_load_state("load")
    assert "Check your inbox" in page.locator("main").inner_text()
    page.goto(_verification_path(live_server.settings.outbox_dir, f"{name}@example.org"))
    sign_in(page, name)
    return name


def test_sign_up_sign_out_sign_in(page, live_server, shoot, axe):
    page.goto("/signup")
    found, summary = axe(page)
    assert not found, summary
    shoot(page, "signup")
    name = sign_up(page, live_server)
    assert page.get_by_role("link", name=re.compile(name)).first.is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/papers$"))
    assert page.get_by_role("link", name=re.compile(name)).count() == 0
    sign_in(page, name)
    assert page.get_by_role("link", name=re.compile(name)).first.is_visible()


def test_upvote_changes_count_without_layout_shift(page, live_server):
    sign_up(page, live_server)
    page.goto("/papers")
    card = page.locator("article.card").nth(2)
    button = card.locator("button.vote-btn")
    count = card.locator(".count")
    before = int(count.inner_text())
    box = card.bounding_box()
    title_box = card.locator(".card-title").bounding_box()
    button.click()
    page.wait_for_function(
        "([el, n]) => el.textContent.trim() === String(n)", arg=[count.element_handle(), before + 1]
    )
    assert button.get_attribute("aria-pressed") == "true"
    assert card.bounding_box() == box
    assert card.locator(".card-title").bounding_box() == title_box
    page.reload()
    assert int(page.locator("article.card").nth(2).locator(".count").inner_text()) == before + 1
    # Keyboard: u on the focused card takes the vote back.
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("u")
    page.wait_for_function(
        "([el, n]) => el.textContent.trim() === String(n)",
        arg=[page.locator("article.card").nth(2).locator(".count").element_handle(), before],
    )
    assert not page.js_errors


def test_signed_out_upvote_leads_to_sign_in(page):
    page.goto("/papers")
    page.locator("article.card").first.locator(".vote-btn").click()
    page.wait_for_url(re.compile(r"/signin"))


def test_comment_on_a_paper(page, live_server, shoot):
    sign_up(page, live_server)
    page.goto("/papers")
    page.locator("article.card .card-title a").first.click()
    page.wait_for_url(re.compile(r"/papers/\d{4}\.\d{4,5}$"))
    text = "Does the bound hold for $\\epsilon < 1$? Nice ablations."
    page.get_by_label(re.compile("Add a comment")).fill(text)
    page.get_by_role("button", name="Comment", exact=True).click()
    page.wait_for_load_state("load")
    comment = page.locator(".comment-body", has_text="Nice ablations")
    assert comment.is_visible()
    assert comment.locator(".katex").count() == 1  # math in comments renders
    shoot(page, "paper-comments")
