"""axe-core in the browser: no serious or critical violations on the main pages, light and dark."""

from __future__ import annotations

import re

import pytest

PAGES = [
    "/papers",
    "/papers/trending",
    "/papers?q=agent",
    "/papers?q=paper+2608+19880",  # "did you mean arXiv id …?"
    "/papers/2608.19880",
    "/papers/2501.99999",
]


@pytest.mark.parametrize("path", PAGES)
def test_no_serious_violations(page, axe, path):
    page.goto(path)
    page.wait_for_load_state("load")
    found, summary = axe(page)
    assert not found, summary


def test_no_serious_violations_dark_and_phone(dark_page, phone_page, axe):
    for p in (dark_page, phone_page):
        for path in ("/papers", "/papers?q=agent"):
            p.goto(path)
            found, summary = axe(p)
            assert not found, (path, summary)
    dark_page.goto("/papers/2608.19880")
    dark_page.wait_for_load_state("load")
    found, summary = axe(dark_page)
    assert not found, summary


def test_focus_is_visible(page):
    page.goto("/papers")
    page.keyboard.press("Tab")  # skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), re.escape(outline)
