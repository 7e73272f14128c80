"""Front page in a real browser: browse, change day, keyboard navigation, layout at two widths."""

from __future__ import annotations

import re

CARD_TITLE = "article.card .card-title a"


def test_front_page_and_change_day(page, shoot):
    page.goto("/papers")
    assert re.search(r"Daily papers", page.title(), re.I)
    assert page.locator('meta[property="og:title"]').get_attribute("content") == page.title()
    cards = page.locator("article.card")
    assert cards.count() > 5
    first_title = page.locator(CARD_TITLE).first.inner_text()
    shoot(page, "front-desktop")
    heading = page.locator("h1").inner_text()
    page.get_by_role("link", name=re.compile("^Previous day")).click()
    page.wait_for_url(re.compile(r"/papers/date/\d{4}-\d{2}-\d{2}$"))
    assert page.locator("h1").inner_text() != heading
    assert page.locator(CARD_TITLE).first.inner_text() != first_title
    page.get_by_role("link", name=re.compile("^Next day")).click()
    page.wait_for_url(re.compile(r"/papers/date/"))
    assert page.locator("h1").inner_text() == heading
    page.get_by_role("link", name="Week", exact=True).click()
    page.wait_for_url(re.compile(r"/papers/week/\d{4}-W\d{2}$"))
    assert page.locator("article.card").count() >= cards.count()
    assert not page.js_errors


def test_keyboard_moves_between_cards_and_opens(page):
    page.goto("/papers")
    titles = page.locator(CARD_TITLE)
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.textContent") == titles.nth(0).inner_text()
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    second = titles.nth(1).inner_text()
    assert page.evaluate("document.activeElement.textContent") == second
    assert page.locator("article.card.is-current").count() == 1
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Escape")  # leaves the search box; j/k work again
    third = titles.nth(2).inner_text()
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.textContent") == third
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/papers/\d{4}\.\d{4,5}$"))
    assert page.locator("h1").inner_text() == third


def test_phone_layout_has_no_horizontal_scroll(phone_page, shoot):
    phone_page.goto("/papers")
    assert phone_page.locator("article.card").count() > 5
    overflow = phone_page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    shoot(phone_page, "front-phone")


def test_dark_theme_follows_system(dark_page, page, shoot):
    dark_page.goto("/papers")
    page.goto("/papers")
    bg = "getComputedStyle(document.body).backgroundColor"
    assert dark_page.evaluate(bg) != page.evaluate(bg)
    shoot(dark_page, "front-dark")


def test_paper_page_renders_math_and_links(page, shoot):
    page.goto("/papers")
    page.locator(CARD_TITLE).first.click()
    page.wait_for_url(re.compile(r"/papers/\d{4}\.\d{4,5}$"))
    assert page.locator('meta[property="og:type"]').get_attribute("content") == "article"
    assert (
        page.get_by_role("link", name="PDF")
        .get_attribute("href")
        .startswith("https://arxiv.org/pdf/")
    )
    assert page.locator("h2", has_text="Abstract").is_visible()
    shoot(page, "paper-desktop")
    assert not page.js_errors


def test_trending_tab_and_windows(page, shoot):
    page.goto("/papers")
    page.locator("nav.tabs").get_by_role("link", name="Trending").click()
    page.wait_for_url(re.compile(r"/papers/trending$"))
    assert page.locator("nav.tabs a[aria-current=page]").inner_text() == "Trending"
    cards = page.locator("article.card")
    assert cards.count() > 3
    why = cards.first.locator("details.why")
    why.locator("summary").click()
    assert why.locator("table").is_visible()
    shoot(page, "trending-desktop")
    windows = page.locator("nav[aria-label='Trending window'] a")
    assert windows.count() >= 2
    other = windows.nth(0)
    label = other.inner_text()
    other.click()
    page.wait_for_url(re.compile(r"/papers/trending\?window="))
    assert label in page.locator("h1").inner_text()
    assert not page.js_errors
