"""Read paper cards out of a rendered page the way a browser without JavaScript sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Card:
    arxiv_id: str
    action: str | None = None  # the upvote form's action (signed in)
    fields: dict[str, str] = field(default_factory=dict)  # its hidden inputs, as rendered
    pressed: str | None = None  # aria-pressed of the upvote button
    signin_link: str | None = None  # href of the "sign in to upvote" link (signed out)
    count: int | None = None  # the number in the upvote control
    cats: list[str] = field(default_factory=list)
    has_code_badge: bool = False
    has_comments_link: bool = False
    marks: list[str] = field(default_factory=list)  # highlighted words in the card


class _Cards(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cards: list[Card] = []
        self.meta_csrf: str | None = None
        self._depth = 0  # <article> nesting while inside a card
        self._in_vote_count = False
        self._in_cat = False
        self._in_mark = False

    @property
    def card(self) -> Card | None:
        return self.cards[-1] if self._depth else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "meta" and a.get("name") == "csrf-token":
            self.meta_csrf = a.get("content")
        if tag == "article" and "card" in classes:
            self.cards.append(Card(a["data-arxiv-id"]))
            self._depth = 1
            return
        card = self.card
        if card is None:
            return
        if tag == "article":
            self._depth += 1
        elif tag == "form" and "vote-form" in classes:
            card.action = a.get("action")
        elif tag == "input" and card.action and a.get("type") == "hidden":
            card.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and "vote-btn" in classes:
            card.pressed = a.get("aria-pressed")
        elif tag == "a" and "vote-btn" in classes:
            card.signin_link = a.get("href")
        elif tag == "span" and "count" in classes and card.count is None:
            self._in_vote_count = True
        elif tag == "span" and "cat" in classes:
            self._in_cat = True
        elif tag == "a" and "badge-code" in classes:
            card.has_code_badge = True
        elif tag == "a" and "comments-link" in classes:
            card.has_comments_link = True
        elif tag == "mark":
            self._in_mark = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "article" and self._depth:
            self._depth -= 1
        elif tag == "span":
            self._in_vote_count = self._in_cat = False
        elif tag == "mark":
            self._in_mark = False

    def handle_data(self, data: str) -> None:
        card = self.card
        if card is None:
            return
        if self._in_vote_count:
            card.count = int(data.strip())
            self._in_vote_count = False
        elif self._in_cat:
            card.cats.append(data.strip())
        elif self._in_mark:
            card.marks.append(data)


def parse(html: str) -> tuple[dict[str, Card], str | None]:
    """Cards by arXiv id (in page order) and the page's <meta name="csrf-token">."""
    parser = _Cards()
    parser.feed(html)
    return {c.arxiv_id: c for c in parser.cards}, parser.meta_csrf


def cards(html: str) -> dict[str, Card]:
    return parse(html)[0]
