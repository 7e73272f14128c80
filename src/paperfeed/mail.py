"""Outgoing mail. Minimal stand-in (community branch): writes every message to the Maildir
outbox under `settings.outbox_dir`; the digest branch's mail layer replaces this at merge."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from paperfeed.config import Settings


def send(settings: Settings, to: str, subject: str, text: str, html: str | None = None) -> str:
    """Deliver one message (outbox: a new file in the Maildir); returns its Message-ID."""
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="paperfeed.local")
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    settings.outbox_dir.parent.mkdir(parents=True, exist_ok=True)  # Maildir makes the rest
    box = mailbox.Maildir(settings.outbox_dir, create=True)
    box.add(msg)
    return str(msg["Message-ID"])
