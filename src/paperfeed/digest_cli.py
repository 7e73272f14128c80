"""CLI for mail and digests: `paperfeed mail ...`, `paperfeed digest ...`, `paperfeed worker`."""

from __future__ import annotations

import datetime as dt
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from sqlalchemy import Connection, Engine

from paperfeed import db
from paperfeed.cli_common import migrated_engine
from paperfeed.config import Settings, get_settings

if TYPE_CHECKING:
    from paperfeed.digest import Edition

# mail, subscriptions and the digest modules are imported by the commands that use them:
# every `paperfeed` command imports this module, and they cost ~0.3 s of its start-up.

T = TypeVar("T")
mail_app = typer.Typer(
    help="Outgoing mail: the local outbox and a test message.", no_args_is_help=True
)
digest_app = typer.Typer(help="Email digests: subscriptions and editions.", no_args_is_help=True)


def _engine(settings: Settings) -> Engine:
    return migrated_engine(settings, exit_code=2)


@mail_app.command("outbox")
def mail_outbox() -> None:
    """List the messages in the local outbox (PAPERFEED_MAIL_BACKEND=outbox), oldest first."""
    from paperfeed import mail

    entries = mail.list_outbox(get_settings())
    for e in entries:
        typer.echo(f"{e.number:>5}  {e.date[:31]:<31}  {e.to[:40]:<40}  {e.subject}")
    typer.echo(f"{len(entries)} message(s)")


@mail_app.command("show")
def mail_show(number: int = typer.Argument(..., help="Message number from `mail outbox`.")) -> None:
    """Print one outbox message: headers and the plain-text part."""
    from paperfeed import mail

    try:
        message = mail.read_outbox(get_settings(), number)
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(mail.readable_text(message))


@mail_app.command("test")
def mail_test(to: str = typer.Argument(..., help="Recipient address.")) -> None:
    """Send a test message through the configured backend (checks SMTP settings)."""
    from paperfeed import mail

    settings = get_settings()
    message = mail.build_message(
        settings,
        to=to,
        subject=f"{settings.site_name} test message",
        text="This is a test message: mail delivery works.\n",
    )
    try:
        message_id = mail.send_mail(settings, message)
    except mail.MailError as exc:
        typer.echo(f"not sent: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"sent {message_id}")


def _write(
    call: Callable[[Connection, Settings], T], *errors: type[Exception]
) -> tuple[Settings, T]:
    """Run one domain call in a write transaction; the errors it expects print and exit 1."""
    settings = get_settings()
    engine = _engine(settings)
    try:
        with db.transaction(engine) as conn:
            return settings, call(conn, settings)
    except errors as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@digest_app.command("subscribe")
def digest_subscribe(email: str) -> None:
    """Subscribe an address: sends the double opt-in confirmation mail."""
    from paperfeed import mail, subscriptions

    settings, message = _write(
        lambda conn, s: subscriptions.subscribe(conn, s, email), subscriptions.InvalidInput
    )
    if message is not None:
        try:
            mail.send_mail(settings, message)
        except mail.MailError as exc:  # the subscription is pending; subscribing again resends
            typer.echo(f"confirmation mail not sent: {exc}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(subscriptions.SUBSCRIBE_RESPONSE)


@digest_app.command("confirm")
def digest_confirm(token: str) -> None:
    """Confirm a subscription with the token from its confirmation link."""
    from paperfeed import subscriptions

    _, prefs = _write(
        lambda conn, s: subscriptions.confirm(conn, s, token), subscriptions.TokenError
    )
    typer.echo(f"subscribed: {prefs.email} ({prefs.frequency})")


@digest_app.command("unsubscribe")
def digest_unsubscribe(token: str) -> None:
    """Unsubscribe by token (e.g. from a List-Unsubscribe mailto reply)."""
    from paperfeed import subscriptions

    _, address = _write(
        lambda conn, s: subscriptions.unsubscribe(conn, s, token), subscriptions.TokenError
    )
    typer.echo(f"unsubscribed: {address}")


def _stop_on_signals() -> Callable[[], bool]:
    """SIGTERM/SIGINT finish the message in flight, release the rest, and exit."""
    stopped: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        stopped.append(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return lambda: bool(stopped)


@digest_app.command("send")
def digest_send(
    edition: str = typer.Option(..., "--edition", help="Edition date, YYYY-MM-DD."),
    frequency: str = typer.Option(
        "daily", "--frequency", help="daily | weekly (7 days ending DATE)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print who would get what; send nothing."
    ),
) -> None:
    """Send one edition to every active subscriber of that frequency (rerun- and parallel-safe).

    Exit status: 0 done (or no edition: nothing featured), 1 messages left to retry, 2 bad input
    or configuration.
    """
    from paperfeed.digest_send import send_edition

    settings = get_settings()
    ed = _edition(edition, frequency)
    engine = _engine(settings)
    report = send_edition(engine, settings, ed, dry_run=dry_run, stop=_stop_on_signals())
    if report.no_edition:
        typer.echo(NO_EDITION.format(ed.key))
        return
    for line in report.lines:
        typer.echo(line)
    typer.echo(f"{ed.key}: {report.summary()}")
    if not report.ok:
        raise typer.Exit(1)


@digest_app.command("enqueue")
def digest_enqueue(
    edition: str = typer.Option(..., "--edition", help="Edition date, YYYY-MM-DD."),
    frequency: str = typer.Option(
        "daily", "--frequency", help="daily | weekly (7 days ending DATE)."
    ),
    jobs: int = typer.Option(
        2, "--jobs", min=1, help="Send jobs to queue; each one a worker thread can take."
    ),
) -> None:
    """Plan an edition and queue its send jobs for `paperfeed worker` (on any machine).

    Exit status: 0 queued (or no edition), 2 bad input or configuration.
    """
    from paperfeed.jobs import enqueue_edition

    settings = get_settings()
    ed = _edition(edition, frequency)
    planned = enqueue_edition(settings, _engine(settings), ed, jobs)
    if planned is None:
        typer.echo(NO_EDITION.format(ed.key))
        return
    typer.echo(f"{ed.key}: planned {planned} new message(s), queued {jobs} send job(s)")


NO_EDITION = "no {} edition: nothing was featured in its window (weekend?)"


def _edition(date: str, frequency: str) -> Edition:
    """The --edition/--frequency options as an Edition; exit 2 when they make no sense."""
    from paperfeed.digest import Edition

    try:
        return Edition(frequency, dt.date.fromisoformat(date))
    except ValueError as exc:
        typer.echo(f"bad --edition/--frequency: {exc}", err=True)
        raise typer.Exit(2) from exc


def worker(
    workers: int = typer.Option(2, "--workers", help="Worker threads (and send jobs per edition)."),
) -> None:
    """Run the job queue: the digest schedule every 10 minutes and the send jobs it enqueues."""
    from paperfeed.jobs import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    run_worker(settings, _engine(settings), workers=workers)


def register(app: typer.Typer) -> None:
    """Attach these commands to the main `paperfeed` app."""
    app.add_typer(mail_app, name="mail")
    app.add_typer(digest_app, name="digest")
    app.command("worker")(worker)
