"""Search in the browser: results as you type, highlighted, keyboard to open; the results page."""

from __future__ import annotations

import re

QUERY = "agent"


def test_live_results_highlight_and_open_with_keyboard(page, shoot):
    page.goto("/papers")
    page.keyboard.press("/")
    page.keyboard.type(QUERY, delay=30)
    options = page.locator("#search-live li[role=option]")
    options.first.wait_for()
    assert options.count() >= 3
    assert page.locator("#search-live mark").first.inner_text().lower().startswith(QUERY)
    assert page.locator("#q").get_attribute("aria-expanded") == "true"
    shoot(page, "search-live", docs=True)
    title = options.nth(1).locator(".r-title").inner_text()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert options.nth(1).get_attribute("aria-selected") == "true"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/papers/\d{4}\.\d{4,5}$"))
    assert page.locator("h1").inner_text() == title
    assert not page.js_errors


def test_results_page_and_open_a_result(page, shoot):
    page.goto("/papers")
    page.fill("#q", QUERY)
    page.keyboard.press("Enter")  # nothing selected: the form opens the results page
    page.wait_for_url(re.compile(r"/papers\?q=agent"))
    results = page.locator("article.card .card-title a")
    assert results.count() >= 3
    assert page.locator("article.card mark").count() > 0
    shoot(page, "search-results")
    title = results.first.inner_text()
    results.first.click()
    page.wait_for_url(re.compile(r"/papers/\d{4}\.\d{4,5}$"))
    assert page.locator("h1").inner_text() == title
