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


def test_results_are_listing_cards_with_keyboard_and_upvote(page, live_server):
    """Search results are the front page's cards: j/k/u work, upvoting moves nothing."""
    from browser.test_community import sign_up

    sign_up(page, live_server)
    page.goto(f"/papers?q={QUERY}")
    cards = page.locator("article.card")
    assert cards.count() >= 3
    first = cards.first
    # (the demo sample has no categories; tests/test_search.py checks those and code badges)
    for part in (".card-title a[data-card-link]", ".authors", ".snippet mark", ".meta"):
        assert first.locator(part).count() >= 1, part
    assert first.locator(".comments-link").count() == 1
    assert first.locator("button.vote-btn[aria-pressed=false]").count() == 1

    arxiv_id = cards.nth(1).get_attribute("data-arxiv-id")
    card = page.locator(f'article.card[data-arxiv-id="{arxiv_id}"]')
    button, count = card.locator("button.vote-btn"), card.locator(".count")
    before = int(count.inner_text())
    box, title_box = card.bounding_box(), card.locator(".card-title").bounding_box()
    button.click()
    page.wait_for_function(
        "([el, n]) => el.textContent.trim() === String(n)", arg=[count.element_handle(), before + 1]
    )
    assert button.get_attribute("aria-pressed") == "true"
    assert card.bounding_box() == box
    assert card.locator(".card-title").bounding_box() == title_box
    page.reload()
    assert card.locator("button.vote-btn").get_attribute("aria-pressed") == "true"
    assert int(card.locator(".count").inner_text()) == before + 1
    # j moves to this result; u takes the vote back; Enter opens it.
    position = page.evaluate(
        "id => [...document.querySelectorAll('article.card')]"
        ".findIndex(c => c.dataset.arxivId === id)",
        arxiv_id,
    )
    for _ in range(position + 1):
        page.keyboard.press("j")
    title = card.locator(".card-title a").inner_text()
    assert page.evaluate("document.activeElement.textContent") == title
    page.keyboard.press("u")
    page.wait_for_function(
        "([el, n]) => el.textContent.trim() === String(n)",
        arg=[card.locator(".count").element_handle(), before],
    )
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/papers/\d{4}\.\d{4,5}$"))
    assert page.locator("h1").inner_text() == title
    assert not page.js_errors


def test_upvote_on_cached_trending_without_javascript(browser, live_server):
    """JavaScript off: the upvote form of a cached trending card posts and comes back voted."""
    from browser import browser_support as bs
    from browser.test_community import sign_up

    context = browser.new_context(
        viewport=bs.DESKTOP, base_url=live_server.url, java_script_enabled=False
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/papers/trending")  # signed out: fills the listing cache
        sign_up(page, live_server)
        page.goto("/papers/trending")
        arxiv_id = page.locator("article.card").nth(3).get_attribute("data-arxiv-id")
        card = page.locator(f'article.card[data-arxiv-id="{arxiv_id}"]')
        button = card.locator("button.vote-btn")
        before = int(card.locator(".count").inner_text())
        assert button.get_attribute("aria-pressed") == "false"
        button.click()  # a plain form POST, then the redirect back
        page.wait_for_url(re.compile(r"/papers/trending$"))
        assert card.locator("button.vote-btn").get_attribute("aria-pressed") == "true"
        assert int(card.locator(".count").inner_text()) == before + 1
    finally:
        context.close()
