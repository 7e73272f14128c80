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


SMTP_TLS_MODES = ("none", "starttls", "tls")
# Replies that mean "you may not send until you authenticate / start TLS" (RFC 4954 §6,
# RFC 3207 §4): a configuration problem, never the recipient's, so never counted as a bounce.
AUTH_REPLY_CODES = frozenset({530, 534, 535, 538})


def _text(detail: object) -> str:
    return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)


def _smtp_code_error(code: int, detail: object) -> MailError:
    text = _text(detail)
    if code in AUTH_REPLY_CODES:
        return MailError(
            f"{code} {text} (the server wants TLS or authentication first: "
            "check PAPERFEED_SMTP_TLS, PAPERFEED_SMTP_USER and PAPERFEED_SMTP_PASSWORD)"
        )
    if 500 <= code < 600:
        return PermanentMailError(code, text)
    return TransientMailError(f"{code} {text}")


def classify_smtp_error(exc: Exception, settings: Settings, *, connecting: bool) -> MailError:
    """Map an smtplib/ssl/socket error to transient (retry), permanent (bounce) or MailError (stop).

    `connecting`: raised while opening the session (greeting, TLS handshake, AUTH), where a TLS
    failure means a wrong setting rather than a dropped connection."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    if isinstance(exc, MailError):
        return exc
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        if 400 <= exc.smtp_code < 500:  # 454: temporary authentication failure
            return TransientMailError(f"{exc.smtp_code} {_text(exc.smtp_error)}")
        return MailError(
            f"SMTP authentication as {settings.smtp_user!r} at {where} failed: "
            f"{exc.smtp_code} {_text(exc.smtp_error)} "
            "(check PAPERFEED_SMTP_USER and PAPERFEED_SMTP_PASSWORD)"
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):  # no STARTTLS, or no AUTH without TLS
        return MailError(f"SMTP server {where}: {exc} (check PAPERFEED_SMTP_TLS)")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, detail = next(iter(exc.recipients.values()))
        return _smtp_code_error(code, detail)
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        return _smtp_code_error(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPResponseException):  # greeting, HELO, AUTH, STARTTLS replies
        if exc.smtp_code in AUTH_REPLY_CODES or (connecting and exc.smtp_code >= 500):
            return MailError(
                f"SMTP server {where} refused us: {exc.smtp_code} {_text(exc.smtp_error)} "
                "(check PAPERFEED_SMTP_TLS, PAPERFEED_SMTP_USER and PAPERFEED_SMTP_PASSWORD)"
            )
        return TransientMailError(f"{exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailError(
            f"TLS: the certificate of SMTP server {where} is not trusted "
            f"({exc.verify_message}); nothing was sent. Set PAPERFEED_SMTP_CA_FILE to the CA "
            "bundle that signed it, or fix PAPERFEED_SMTP_HOST to the name in the certificate"
        )
    if (
        connecting
        and isinstance(exc, ssl.SSLError)
        and not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError)
    ):
        return MailError(
            f"TLS handshake with SMTP server {where} failed: {exc} (PAPERFEED_SMTP_TLS="
            f"{settings.smtp_tls}: is that what this port speaks? usually 465 = tls, "
            "587 = starttls)"
        )
    # Dropped or refused connection, timeout, a TLS session cut mid-message: try again later.
    return TransientMailError(f"{type(exc).__name__}: {exc}")


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Client TLS context: verifies the server's certificate chain and host name by default."""
    try:
        context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise MailError(
            f"PAPERFEED_SMTP_CA_FILE {settings.smtp_ca_file!r} cannot be loaded: {exc}"
        ) from exc
    if not settings.smtp_tls_verify:  # explicit opt-out (doctor warns): encrypted, unauthenticated
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def open_smtp(settings: Settings, timeout_s: float | None = None) -> smtplib.SMTP:
    """An SMTP session, TLS-protected as configured and authenticated; raises a MailError.

    STARTTLS is required when configured: a server that does not offer it is an error, never a
    silent fall back to plain text."""
    mode = settings.smtp_tls
    if mode not in SMTP_TLS_MODES:
        raise MailError(f"unknown PAPERFEED_SMTP_TLS {mode!r} (none | starttls | tls)")
    context = tls_context(settings) if mode != "none" else None
    timeout = settings.smtp_timeout_s if timeout_s is None else timeout_s
    smtp: smtplib.SMTP | None = None
    try:
        if mode == "tls":
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        smtp.ehlo_or_helo_if_needed()
        if mode == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo_or_helo_if_needed()  # starttls() forgot the first EHLO, as RFC 3207 says
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
    except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and timeouts are OSErrors
        if smtp is not None:
            smtp.close()
        raise classify_smtp_error(exc, settings, connecting=True) from exc
    return smtp


class SmtpBackend:
    """One reused SMTP connection (plain, STARTTLS or implicit TLS, optional AUTH)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def deliver(self, sender: str, recipient: str, data: bytes) -> None:
        if self._smtp is None:
            self._smtp = open_smtp(self.settings)
        try:
            self._smtp.sendmail(sender, [recipient], data)
        except (smtplib.SMTPException, OSError) as exc:
            error = classify_smtp_error(exc, self.settings, connecting=False)
            # A refused recipient or message leaves the session usable; anything else (a 4xx
            # may precede a 421 hang-up) starts a fresh session next time.
            if not isinstance(error, PermanentMailError):
                self.close()
            raise error from exc

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


def sender_address(settings: Settings) -> str:
    """The envelope sender (MAIL FROM): the address part of `mail_from`."""
    return email.utils.parseaddr(settings.mail_from)[1] or "noreply@localhost"


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
        self.sender = sender_address(settings)
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
