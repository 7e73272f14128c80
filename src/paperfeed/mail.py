"""Outgoing mail: one Mailer over two backends (local Maildir outbox | SMTP), retries, rate limit.

Digests, confirmations and account mails all go through here. In the default configuration
(`PAPERFEED_MAIL_BACKEND=outbox`) messages land in a Maildir under `data_dir/outbox` that
`paperfeed mail outbox` lists, so a demo works offline and a person can read what was sent.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import mailbox
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import jinja2

from paperfeed.config import Settings


class MailError(Exception):
    """A message could not be sent, and retrying it as is will not help (configuration, auth)."""


class TransientMailError(MailError):
    """Worth retrying later: a 4xx reply, a refused or dropped connection, a timeout."""


class PermanentMailError(MailError):
    """The server rejected this message for good (5xx): the address bounces."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code} {detail}")
        self.code = code


class Backend(Protocol):
    def deliver(self, sender: str, recipient: str, data: bytes) -> None: ...

    def close(self) -> None: ...


class OutboxBackend:
    """Writes each message into a Maildir (atomic: written to tmp/, renamed into new/)."""

    def __init__(self, directory: Path) -> None:
        for sub in ("tmp", "new", "cur"):  # Maildir(create=True) skips an existing empty folder
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(directory, create=True)

    def deliver(self, sender: str, recipient: str, data: bytes) -> None:
        self.maildir.add(data)

    def close(self) -> None:
        return None


def _smtp_code_error(code: int, detail: object) -> MailError:
    text = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    if 500 <= code < 600:
        return PermanentMailError(code, text)
    return TransientMailError(f"{code} {text}")


class SmtpBackend:
    """One reused SMTP connection (plain, STARTTLS or implicit TLS, optional AUTH)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_tls == "tls":
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
            if s.smtp_tls == "starttls":
                smtp.starttls(context=context)
        smtp.ehlo_or_helo_if_needed()
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password)
        return smtp

    def deliver(self, sender: str, recipient: str, data: bytes) -> None:
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            self._smtp.sendmail(sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, detail = next(iter(exc.recipients.values()))
            raise self._fail(_smtp_code_error(code, detail)) from exc
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            raise MailError(
                f"SMTP authentication failed: {exc.smtp_code} {exc.smtp_error!r}"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise MailError(f"SMTP server certificate rejected: {exc}") from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise self._fail(_smtp_code_error(exc.smtp_code, exc.smtp_error)) from exc
        except smtplib.SMTPResponseException as exc:  # e.g. a 421 greeting or HELO refusal
            self.close()
            raise TransientMailError(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # dropped connection, refused, timeout
            self.close()
            raise TransientMailError(f"{type(exc).__name__}: {exc}") from exc

    def _fail(self, error: MailError) -> MailError:
        # After a 4xx the server may be about to hang up (421); start a fresh session next time.
        if isinstance(error, TransientMailError):
            self.close()
        return error

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


def make_backend(settings: Settings) -> Backend:
    """The backend named by `mail_backend`."""
    if settings.mail_backend == "outbox":
        return OutboxBackend(settings.outbox_dir)
    if settings.mail_backend == "smtp":
        return SmtpBackend(settings)
    raise MailError(f"unknown PAPERFEED_MAIL_BACKEND {settings.mail_backend!r} (outbox | smtp)")


def message_id_domain(settings: Settings) -> str:
    """The right-hand side of our Message-IDs: the site's host name."""
    return urlsplit(settings.base_url).hostname or "localhost"


class Mailer:
    """Sends messages with retries (exponential backoff) and a per-process rate limit."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.backend = backend if backend is not None else make_backend(settings)
        self.sender = email.utils.parseaddr(settings.mail_from)[1] or "noreply@localhost"
        self._sleep = sleep
        self._interval = 1.0 / settings.mail_rate_per_s if settings.mail_rate_per_s > 0 else 0.0
        self._next_slot = 0.0

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    def _wait_for_slot(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        if now < self._next_slot:
            self._sleep(self._next_slot - now)
            now = self._next_slot
        self._next_slot = now + self._interval

    def send_raw(self, recipient: str, data: bytes) -> None:
        """Deliver one serialized message; transient failures are retried, then re-raised."""
        retries = max(0, self.settings.mail_retries)
        for attempt in range(retries + 1):
            self._wait_for_slot()
            try:
                self.backend.deliver(self.sender, recipient, data)
                return
            except TransientMailError:
                if attempt == retries:
                    raise
                self._sleep(self.settings.mail_retry_backoff_s * (2**attempt))

    def send(self, message: EmailMessage) -> str:
        """Send a message (From, Date, Message-ID filled in if missing); returns its Message-ID."""
        if not message["From"]:
            message["From"] = self.settings.mail_from
        if not message["Date"]:
            message["Date"] = email.utils.formatdate(localtime=False)
        if not message["Message-ID"]:
            message["Message-ID"] = email.utils.make_msgid(domain=message_id_domain(self.settings))
        recipient = email.utils.parseaddr(str(message["To"]))[1]
        if not recipient:
            raise MailError("message has no To address")
        self.send_raw(recipient, message.as_bytes(policy=policy.SMTP))
        return str(message["Message-ID"])


def send_mail(settings: Settings, message: EmailMessage) -> str:
    """Send one message through the configured backend; returns its Message-ID."""
    with Mailer(settings) as mailer:
        return mailer.send(message)


@dataclass(frozen=True)
class OutboxEntry:
    number: int  # 1 = oldest; what `paperfeed mail show N` takes
    key: str
    date: str
    to: str
    subject: str


def _outbox_files(settings: Settings) -> list[Path]:
    root = settings.outbox_dir
    files = [
        path
        for sub in ("new", "cur")
        if (root / sub).is_dir()
        for path in (root / sub).iterdir()
        if not path.name.startswith(".")
    ]
    return sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name))


def list_outbox(settings: Settings) -> list[OutboxEntry]:
    """Messages in the local outbox, oldest first."""
    parser = BytesHeaderParser(policy=policy.default)
    entries = []
    for number, path in enumerate(_outbox_files(settings), start=1):
        with path.open("rb") as fh:
            headers = parser.parse(fh)
        entries.append(
            OutboxEntry(
                number,
                path.name,
                str(headers["Date"] or ""),
                str(headers["To"] or ""),
                str(headers["Subject"] or ""),
            )
        )
    return entries


def read_outbox(settings: Settings, number: int) -> EmailMessage:
    """The outbox message number N (as listed), parsed."""
    files = _outbox_files(settings)
    if not 1 <= number <= len(files):
        raise LookupError(f"no message {number} in the outbox ({len(files)} messages)")
    msg = email.message_from_bytes(files[number - 1].read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def readable_text(message: EmailMessage) -> str:
    """Headers plus the plain-text part (or the first part) of a message, for the terminal."""
    lines = [f"{name}: {value}" for name, value in message.items()]
    body = message.get_body(preferencelist=("plain", "html"))
    content = body.get_content() if body is not None else ""
    return "\n".join(lines) + "\n\n" + str(content)


@functools.lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    """Jinja2 environment for mail bodies (`web/templates/mail/*.html|*.txt`), HTML autoescaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("paperfeed", "web/templates/mail"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def build_message(
    settings: Settings, *, to: str, subject: str, text: str, html: str | None = None
) -> EmailMessage:
    """A plain-text message, or multipart/alternative (text + HTML) when html is given."""
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def send(
    settings: Settings, to: str, subject: str, text: str, html: str | None = None
) -> str | None:
    """Send one account message (verification, reset); None if the mail server failed.

    A dead mail server must not fail the sign-up that triggered the message: the account is
    stored, the failure is logged, and the person can ask for the link again."""
    message = build_message(settings, to=to, subject=subject, text=text, html=html)
    try:
        return send_mail(settings, message)
    except MailError as exc:
        logging.getLogger(__name__).error("mail to %s failed: %s", to, exc)
        return None
