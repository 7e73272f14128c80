"""Community in the browser: sign up, sign in, upvote (count changes, nothing moves), comment."""

from __future__ import annotations

import itertools
import re

PASSWORD = "correct horse battery"
_names = itertools.count(1)


def sign_up(page) -> str:
    name = f"reader{next(_names)}"
    page.goto("/signup")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_load_state("load")
    return name


def test_sign_up_sign_out_sign_in(page, shoot, axe):
    page.goto("/signup")
    found, summary = axe(page)
    assert not found, summary
    shoot(page, "signup")
    name = sign_up(page)
    assert page.get_by_role("link", name=re.compile(name)).first.is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/papers$"))
    assert page.get_by_role("link", name=re.compile(name)).count() == 0
    page.get_by_role("link", name="Sign in").first.click()
    page.get_by_label("Username or email").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")
    assert page.get_by_role("link", name=re.compile(name)).first.is_visible()


def test_upvote_changes_count_without_layout_shift(page):
    sign_up(page)
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


def test_comment_on_a_paper(page, shoot):
    sign_up(page)
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
