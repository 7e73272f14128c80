"""Digest messages: Jinja2 templates to multipart (plain text + HTML) MIME bytes, fast.

Subscribers whose selection is identical share one rendering: the templates are rendered once per
distinct selection with placeholders where the per-subscriber signed links go, and each message
only substitutes its own tokens and encodes. The MIME is assembled directly (quoted-printable,
CRLF) instead of through `email.message`, which cost more than the rest of composition together.
"""

from __future__ import annotations

import binascii
import email.utils
import hashlib
import re
from email.header import Header
from typing import Any
from urllib.parse import quote

from paperfeed import mail
from paperfeed.config import Settings
from paperfeed.digest import EditionData, Item, Profile
from paperfeed.subscriptions import BulkSigner, link

PLACEHOLDER = re.compile(r"@@PF(UNSUB|MANAGE|FB([+-])(\d+))@@")
FOR_YOU_SLOT = "@@PFSLOT_FOR_YOU@@"  # where the cards go in the rendered frame
TRENDING_SLOT = "@@PFSLOT_TRENDING@@"
RENDER_CACHE_LIMIT = 512  # distinct selections kept rendered (~20 KB each); then it restarts


def _header_value(value: str) -> str:
    """A header value as ASCII: RFC 2047 encoded-words when it has anything else."""
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def _qp(body: str) -> bytes:
    """Quoted-printable body with CRLF line ends (never contains our '=_' boundary)."""
    encoded = binascii.b2a_qp(body.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return encoded.replace(b"\n", b"\r\n")


class Renderer:
    """Builds the messages of one edition."""

    def __init__(self, settings: Settings, data: EditionData) -> None:
        self.settings = settings
        self.data = data
        env = mail.templates()
        self.html = env.get_template("digest.html")
        self.text = env.get_template("digest.txt")
        self.html_cards: Any = env.get_template("_cards.html").module  # its macros
        self.text_cards: Any = env.get_template("_cards.txt").module
        self._cards: dict[tuple[int, str], tuple[str, str]] = {}
        self._frames: dict[tuple[bool, bool], tuple[str, str]] = {}
        name, address = email.utils.parseaddr(settings.mail_from)
        self.from_header = email.utils.formataddr((name, address or "noreply@localhost"), "utf-8")
        self.mailto = settings.digest_unsubscribe_mailto or address or "noreply@localhost"
        self.host = mail.message_id_domain(settings)
        self.list_id = f"{settings.site_name} {data.edition.frequency} digest".replace('"', "")
        self._cache: dict[tuple[Item, ...], tuple[str, str, str]] = {}
        self.signer = BulkSigner(settings)

    def message_id(self, subscriber_id: int) -> str:
        """Stable per (subscriber, edition): a resend after a crash carries the same id."""
        ed = self.data.edition
        return f"digest.{ed.frequency}.{ed.date:%Y%m%d}.{subscriber_id}@{self.host}"

    def _card(self, item: Item) -> tuple[str, str]:
        """(text, HTML) of one paper with its reason, rendered once per edition."""
        key = (item.paper_id, item.reason)
        card = self._cards.get(key)
        if card is None:
            base = self.settings.base_url.rstrip("/")
            paper = self.data.by_id[item.paper_id]
            entry = {
                "paper": paper,
                "reason": item.reason[:1].upper() + item.reason[1:],
                "url": f"{base}/papers/{paper.arxiv_id}",
                "more_url": f"{base}/digest/feedback/@@PFFB+{paper.id}@@",
                "less_url": f"{base}/digest/feedback/@@PFFB-{paper.id}@@",
            }
            card = self._cards[key] = (
                str(self.text_cards.card(entry)),
                str(self.html_cards.card(entry)),
            )
        return card

    def _frame(self, for_you: bool, trending: bool) -> tuple[str, str]:
        """(text, HTML) of the message around the cards, one per section combination."""
        key = (for_you, trending)
        frame = self._frames.get(key)
        if frame is None:
            base = self.settings.base_url.rstrip("/")
            ed = self.data.edition
            ctx = {
                "settings": self.settings,
                "edition": ed,
                "label": ed.label(),
                "for_you": for_you,
                "trending": trending,
                "for_you_cards": FOR_YOU_SLOT,
                "trending_cards": TRENDING_SLOT,
                "unsubscribe_url": f"{base}/unsubscribe/@@PFUNSUB@@",
                "manage_url": f"{base}/subscribe/manage/@@PFMANAGE@@",
                "home_url": base + "/",
            }
            frame = self._frames[key] = (self.text.render(ctx), self.html.render(ctx))
        return frame

    def _render(self, items: tuple[Item, ...]) -> tuple[str, str, str]:
        """(subject, text, HTML) with link placeholders: templates run per card, not per person."""
        cached = self._cache.get(items)
        if cached is not None:
            return cached
        for_you = [self._card(i) for i in items if i.section == "for_you"]
        trending = [self._card(i) for i in items if i.section == "trending"]
        text_frame, html_frame = self._frame(bool(for_you), bool(trending))
        text_body = text_frame.replace(FOR_YOU_SLOT, "".join(c[0] for c in for_you)).replace(
            TRENDING_SLOT, "".join(c[0] for c in trending)
        )
        html_body = html_frame.replace(FOR_YOU_SLOT, "".join(c[1] for c in for_you)).replace(
            TRENDING_SLOT, "".join(c[1] for c in trending)
        )
        ed, count = self.data.edition, len(items)
        subject = (
            f"{self.settings.site_name} {ed.frequency} digest, {ed.label()}: "
            f"{count} paper{'s' if count != 1 else ''}"
        )
        rendered = (_header_value(subject), text_body, html_body)
        if len(self._cache) >= RENDER_CACHE_LIMIT:
            self._cache.clear()
        self._cache[items] = rendered
        return rendered

    def render(self, profile: Profile, items: list[Item], date_header: str | None = None) -> bytes:
        """The complete message for one subscriber, ready for SMTP (CRLF, 7-bit)."""
        subject, text_body, html_body = self._render(tuple(items))
        s, sid = self.settings, profile.subscriber_id
        signer = self.signer
        signer.start_message()
        unsub = signer.subscriber("unsubscribe", sid, profile.email)
        manage = signer.subscriber("manage", sid, profile.email)
        tokens: dict[str, str] = {"UNSUB": unsub, "MANAGE": manage}

        def fill(match: re.Match[str]) -> str:
            kind = match.group(1)
            token = tokens.get(kind)
            if token is None:  # a feedback link: each signed once, used in both parts
                signal = 1 if match.group(2) == "+" else -1
                token = tokens[kind] = signer.feedback(sid, int(match.group(3)), signal)
            return token

        text_part = _qp(PLACEHOLDER.sub(fill, text_body))
        html_part = _qp(PLACEHOLDER.sub(fill, html_body))
        mid = self.message_id(sid)
        boundary = "=_pf" + hashlib.blake2s(mid.encode(), digest_size=12).hexdigest()
        unsub_url = link(s, f"/unsubscribe/{unsub}")
        mailto = f"mailto:{self.mailto}?subject={quote('unsubscribe ' + unsub)}"
        head = (
            f"From: {self.from_header}\r\n"
            f"To: {profile.email}\r\n"
            f"Subject: {subject}\r\n"
            f"Date: {date_header or email.utils.formatdate(usegmt=True)}\r\n"
            f"Message-ID: <{mid}>\r\n"
            f"List-Id: {self.list_id} <digest.{self.host}>\r\n"
            f"List-Unsubscribe: <{unsub_url}>,\r\n <{mailto}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            "Auto-Submitted: auto-generated\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
            "\r\n"
            "This is a multi-part message in MIME format.\r\n"
            f"--{boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        middle = (
            f"\r\n--{boundary}\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        return b"".join(
            (
                head.encode("ascii"),
                text_part,
                middle.encode("ascii"),
                html_part,
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )
