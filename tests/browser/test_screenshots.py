"""The README's screenshots (`make screenshots` copies them into docs/screenshots/)."""

from __future__ import annotations

PAPER = "/papers/2608.19880"
SEARCH = "/papers?q=agent"


def test_readme_screenshots(page, dark_page, phone_page, shoot):
    page.goto("/papers")
    page.keyboard.press("j")  # show the keyboard focus on the first card
    page.keyboard.press("j")
    shoot(page, "front-light", docs=True)
    dark_page.goto("/papers")
    shoot(dark_page, "front-dark", docs=True)
    phone_page.goto("/papers")
    shoot(phone_page, "front-phone", docs=True)
    page.goto(PAPER)
    page.wait_for_load_state("load")
    shoot(page, "paper", docs=True)
    phone_page.goto(PAPER)
    phone_page.wait_for_load_state("load")
    shoot(phone_page, "paper-phone")
    page.goto(SEARCH)
    shoot(page, "search", docs=True)
    phone_page.goto(SEARCH)
    shoot(phone_page, "search-phone")
    for p in (page, dark_page, phone_page):
        assert not p.js_errors
    page.goto("/papers/2501.99999")  # a 404 by design
    shoot(page, "not-found")
