"""Digest delivery: plan an edition, claim rows, send, record. Safe to rerun, safe to run many.

The idempotency key is the `digest_sends` row (subscriber, edition). A sender claims a batch of
pending rows with one conditional UPDATE (portable: SQLite and PostgreSQL), so any number of
processes share an edition without sending twice; a row becomes `sent` in its own transaction
right after the SMTP server accepted the message. A killed sender leaves claimed rows behind,
which a rerun on the same host takes back at once (their process is gone) and any other host
after `digest_claim_timeout_s`. The one window no SMTP client can close is between the server's
"250 OK" and our commit (RFC 1047); a message resent from there carries the same Message-ID.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    and_,
    bindparam,
    case,
    or_,
    select,
    text,
    update,
)

from paperfeed import db
from paperfeed.config import Settings
from paperfeed.digest import (
    Edition,
    EditionData,
    Item,
    Profile,
    VectorCache,
    catalog_search,
    has_edition,
    load_edition,
    load_profiles,
    select_items,
)
from paperfeed.digest_render import Renderer
from paperfeed.mail import Mailer, MailError, PermanentMailError, TransientMailError
from paperfeed.models import DigestSend, Subscriber, utcnow

# A run stops (claims released, exit non-zero) after this many transient failures in a row:
# the server is down or throttling us, and cron's next run is a better retry than hammering it.
MAX_CONSECUTIVE_TRANSIENT = 3


@dataclass
class SendReport:
    edition: str
    no_edition: bool = False  # nothing featured in the window: no issue at all
    planned: int = 0
    sent: int = 0
    skipped: int = 0  # unsubscribed meanwhile, or nothing new for them
    bounced: int = 0
    deferred: int = 0  # transient failure: left pending for the next run
    failed: int = 0  # gave up after digest_max_attempts
    aborted: str = ""  # why the run stopped early, if it did
    lines: list[str] = field(default_factory=list)  # dry-run: who would get what

    @property
    def ok(self) -> bool:
        return not (self.deferred or self.failed or self.aborted)

    def summary(self) -> str:
        """One line: the counts, and why the run stopped if it did."""
        return (
            f"planned {self.planned}, sent {self.sent}, skipped {self.skipped}, "
            f"bounced {self.bounced}, deferred {self.deferred}, failed {self.failed}"
            + (f", stopped: {self.aborted}" if self.aborted else "")
        )


def plan(conn: Connection, edition: Edition, subscriber_ids: list[int] | None = None) -> int:
    """Create an edition's pending rows for active subscribers of its frequency (idempotent)."""
    sql = (
        "INSERT INTO digest_sends (subscriber_id, edition, status, attempts) "
        "SELECT id, :e, 'pending', 0 FROM subscribers WHERE status = 'active' AND frequency = :f"
    )
    if subscriber_ids is None:
        result = conn.execute(
            text(sql + " ON CONFLICT DO NOTHING"), {"e": edition.key, "f": edition.frequency}
        )
        return max(result.rowcount, 0)
    total = 0
    stmt = text(sql + " AND id IN :ids ON CONFLICT DO NOTHING").bindparams(
        bindparam("ids", expanding=True)
    )
    for start in range(0, len(subscriber_ids), 900):
        chunk = subscriber_ids[start : start + 900]
        result = conn.execute(stmt, {"e": edition.key, "f": edition.frequency, "ids": chunk})
        total += max(result.rowcount, 0)
    return total


def worker_name() -> str:
    """host:pid:nonce: identifies one sender run; the pid lets a rerun spot a dead one."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_claims(conn: Connection, edition: str) -> int:
    """Free rows claimed by senders on this host whose process no longer exists."""
    host = socket.gethostname()
    owners = conn.execute(
        select(DigestSend.claimed_by)
        .where(
            DigestSend.edition == edition,
            DigestSend.status == "pending",
            DigestSend.claimed_by.like(f"{host}:%"),
        )
        .distinct()
    ).scalars()
    released = 0
    for owner in [o for o in owners if o]:
        pid = owner.split(":")[1] if owner.count(":") >= 2 else ""
        if pid.isdigit() and not _pid_alive(int(pid)):
            result = conn.execute(
                update(DigestSend)
                .where(DigestSend.edition == edition, DigestSend.claimed_by == owner)
                .where(DigestSend.status == "pending")
                .values(claimed_by=None, claimed_at=None)
            )
            released += result.rowcount
    return released


def claim(
    conn: Connection,
    settings: Settings,
    edition: str,
    worker: str,
    limit: int,
    exclude: set[int] | None = None,
) -> list[int]:
    """Atomically take up to `limit` unclaimed (or abandoned) pending rows; their subscriber ids."""
    now = utcnow()
    stale = now - dt.timedelta(seconds=settings.digest_claim_timeout_s)
    claimable = and_(
        DigestSend.edition == edition,
        DigestSend.status == "pending",
        or_(DigestSend.claimed_at.is_(None), DigestSend.claimed_at < stale),
    )
    pick = select(DigestSend.subscriber_id).where(claimable)
    if exclude:
        pick = pick.where(DigestSend.subscriber_id.not_in(exclude))
    pick = pick.order_by(DigestSend.subscriber_id).limit(limit)
    # The outer WHERE repeats the condition: on PostgreSQL a row another worker claimed between
    # our subquery and our UPDATE is re-checked after its lock is released, and skipped.
    conn.execute(
        update(DigestSend)
        .where(claimable, DigestSend.subscriber_id.in_(pick.scalar_subquery()))
        .values(claimed_by=worker, claimed_at=now)
    )
    return list(
        conn.execute(
            select(DigestSend.subscriber_id)
            .where(
                DigestSend.edition == edition,
                DigestSend.claimed_by == worker,
                DigestSend.status == "pending",
            )
            .order_by(DigestSend.subscriber_id)
        ).scalars()
    )


MARK_SENT = text(
    "UPDATE digest_sends SET status = 'sent', message_id = :m, sent_at = :t, "
    "attempts = attempts + 1, error = NULL, claimed_by = NULL "
    "WHERE subscriber_id = :s AND edition = :e"
).bindparams(bindparam("t", type_=DateTime))


def _finish(conn: Connection, sid: int, edition: str, **values: object) -> None:
    conn.execute(
        update(DigestSend)
        .where(DigestSend.subscriber_id == sid, DigestSend.edition == edition)
        .values(claimed_by=None, **values)
    )


def mark_sent(
    conn: Connection, profile: Profile, edition: str, message_id: str, paper_ids: list[int]
) -> None:
    """Record an accepted message and the papers it carried (never sent to them again)."""
    # Plain cached SQL: this runs once per message, the hot path of a 100k edition.
    conn.execute(
        MARK_SENT,
        {"m": message_id, "t": utcnow(), "s": profile.subscriber_id, "e": edition},
    )
    conn.execute(
        text(
            "INSERT INTO digest_papers (subscriber_id, paper_id, edition) VALUES (:s, :p, :e) "
            "ON CONFLICT DO NOTHING"
        ),
        [{"s": profile.subscriber_id, "p": p, "e": edition} for p in paper_ids],
    )
    if profile.bounce_count:
        conn.execute(
            update(Subscriber).where(Subscriber.id == profile.subscriber_id).values(bounce_count=0)
        )


def mark_bounced(
    conn: Connection, settings: Settings, subscriber_id: int, edition: str, error: str
) -> None:
    """A permanent (5xx) refusal: count it; past the threshold the address is `bouncing`."""
    _finish(
        conn,
        subscriber_id,
        edition,
        status="bounced",
        error=error[:2000],
        attempts=DigestSend.attempts + 1,
    )
    conn.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(
            bounce_count=Subscriber.bounce_count + 1,
            status=case(
                (
                    and_(
                        Subscriber.bounce_count + 1 >= settings.digest_bounce_threshold,
                        Subscriber.status == "active",
                    ),
                    "bouncing",
                ),
                else_=Subscriber.status,
            ),
        )
    )


def mark_deferred(
    conn: Connection, settings: Settings, subscriber_id: int, edition: str, error: str
) -> bool:
    """A transient failure: release the row for a later run; True if it has now given up."""
    attempts = conn.execute(
        select(DigestSend.attempts).where(
            DigestSend.subscriber_id == subscriber_id, DigestSend.edition == edition
        )
    ).scalar_one()
    give_up = attempts + 1 >= settings.digest_max_attempts
    _finish(
        conn,
        subscriber_id,
        edition,
        status="failed" if give_up else "pending",
        attempts=attempts + 1,
        error=error[:2000],
        claimed_at=None,
    )
    return give_up


def release(conn: Connection, edition: str, worker: str) -> None:
    """Give back every row this run still holds (graceful stop, abort)."""
    conn.execute(
        update(DigestSend)
        .where(
            DigestSend.edition == edition,
            DigestSend.claimed_by == worker,
            DigestSend.status == "pending",
        )
        .values(claimed_by=None, claimed_at=None)
    )


class EditionRun:
    """The per-run state of one sender: edition data, renderer, vector cache, search."""

    def __init__(self, engine: Engine, settings: Settings, data: EditionData) -> None:
        self.engine = engine
        self.settings = settings
        self.data = data
        self.renderer = Renderer(settings, data)
        self.vectors = VectorCache(data.model)

    def compose(self, conn: Connection, sids: list[int]) -> Iterator[tuple[Profile, list[Item]]]:
        profiles = load_profiles(conn, self.data, sids)
        liked = set().union(*(p.upvoted | p.collected | p.disliked for p in profiles))
        self.vectors.load(conn, liked)
        search = catalog_search(conn, self.settings)  # None: the documented fallback matcher
        for p in profiles:
            items = select_items(self.settings, self.data, p, search, self.vectors)
            yield p, items


def send_edition(
    engine: Engine,
    settings: Settings,
    edition: Edition,
    *,
    mailer: Mailer | None = None,
    dry_run: bool = False,
    plan_rows: bool = True,
    stop: Callable[[], bool] = lambda: False,
) -> SendReport:
    """Deliver an edition: plan rows (unless told not to), then claim-and-send until none left."""
    report = SendReport(edition.key)
    with db.read(engine) as conn:
        data = load_edition(conn, edition)
    if data is None:
        report.no_edition = True
        return report
    run = EditionRun(engine, settings, data)
    if dry_run:
        return _dry_run(engine, run, report)
    if plan_rows:
        with db.transaction(engine) as conn:
            report.planned = plan(conn, edition)
    own_mailer = mailer is None
    mailer = mailer or Mailer(settings)
    worker = worker_name()
    deferred: set[int] = set()
    consecutive_transient = 0
    writer = engine.connect().execution_options(write=True)

    @contextmanager
    def write() -> Iterator[Connection]:
        with writer.begin():
            yield writer

    try:
        with write() as conn:
            release_dead_claims(conn, edition.key)
        while not report.aborted:
            with write() as conn:
                sids = claim(
                    conn, settings, edition.key, worker, settings.digest_claim_batch, deferred
                )
            if not sids:
                break
            with db.read(engine) as conn:
                batch = list(run.compose(conn, sids))
            missing = set(sids) - {p.subscriber_id for p, _ in batch}
            with write() as conn:  # subscriber rows deleted meanwhile
                for sid in missing:
                    _finish(conn, sid, edition.key, status="skipped", error="subscriber deleted")
            for profile, items in batch:
                if stop():
                    report.aborted = "stopped by signal"
                    break
                sid = profile.subscriber_id
                if profile.status != "active" or not items:
                    with write() as conn:
                        _finish(
                            conn,
                            sid,
                            edition.key,
                            status="skipped",
                            error=None if items else "nothing new to send",
                        )
                    report.skipped += 1
                    continue
                message = run.renderer.render(profile, items)
                try:
                    mailer.send_raw(profile.email, message)
                except PermanentMailError as exc:
                    with write() as conn:
                        mark_bounced(conn, settings, sid, edition.key, str(exc))
                    report.bounced += 1
                    consecutive_transient = 0
                    continue
                except TransientMailError as exc:
                    deferred.add(sid)
                    with write() as conn:
                        gave_up = mark_deferred(conn, settings, sid, edition.key, str(exc))
                    report.failed += gave_up
                    report.deferred += not gave_up
                    consecutive_transient += 1
                    if consecutive_transient >= MAX_CONSECUTIVE_TRANSIENT:
                        report.aborted = (
                            f"{consecutive_transient} transient failures in a row: {exc}"
                        )
                        break
                    continue
                consecutive_transient = 0
                with write() as conn:
                    mark_sent(
                        conn,
                        profile,
                        edition.key,
                        run.renderer.message_id(sid),
                        [i.paper_id for i in items],
                    )
                report.sent += 1
    except MailError as exc:  # configuration / authentication: nothing will work
        report.aborted = str(exc)
    finally:
        with write() as conn:
            release(conn, edition.key, worker)
        writer.close()
        if own_mailer:
            mailer.close()
    return report


def _dry_run(engine: Engine, run: EditionRun, report: SendReport) -> SendReport:
    """Who would get what, without writing anything or sending."""
    edition = run.data.edition
    with db.read(engine) as conn:
        sids = list(
            conn.execute(
                text(
                    "SELECT id FROM subscribers s WHERE status = 'active' AND frequency = :f "
                    "AND NOT EXISTS (SELECT 1 FROM digest_sends d WHERE d.subscriber_id = s.id "
                    "AND d.edition = :e AND d.status <> 'pending') ORDER BY id"
                ),
                {"f": edition.frequency, "e": edition.key},
            ).scalars()
        )
        for start in range(0, len(sids), 500):
            for profile, items in run.compose(conn, sids[start : start + 500]):
                if not items:
                    report.skipped += 1
                    report.lines.append(f"{profile.email}: nothing new")
                    continue
                report.planned += 1
                report.lines.append(f"{profile.email}: {len(items)} papers")
                for item in items:
                    paper = run.data.by_id[item.paper_id]
                    why = f" ({item.reason})" if item.reason else ""
                    report.lines.append(
                        f"  [{item.section}] {paper.arxiv_id} {paper.title[:70]}{why}"
                    )
    return report


# --- schedule -----------------------------------------------------------------------------------


def due_edition(frequency: str, timezone: str, hour: int, now: dt.datetime) -> Edition | None:
    """The edition a subscriber is due at `now` (aware), or None before their delivery hour.

    Daily: yesterday's (local) edition from the delivery hour on. Weekly: the week ending last
    Sunday, from Monday's delivery hour on.
    """
    try:
        local = now.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        local = now.astimezone(dt.UTC)
    today = local.date()
    if frequency == "daily":
        if local.hour < hour:
            return None
        return Edition("daily", today - dt.timedelta(days=1))
    if today.weekday() == 0 and local.hour < hour:
        return None
    return Edition("weekly", today - dt.timedelta(days=today.weekday() + 1))


def plan_due(conn: Connection, now: dt.datetime) -> dict[Edition, int]:
    """Plan rows for every active subscriber whose delivery time has come; rows per edition."""
    groups = conn.execute(
        text(
            "SELECT frequency, timezone, delivery_hour, id FROM subscribers "
            "WHERE status = 'active' ORDER BY frequency, timezone, delivery_hour"
        )
    ).all()
    by_edition: dict[Edition, list[int]] = {}
    editions_with_papers: dict[Edition, bool] = {}
    for frequency, timezone, hour, sid in groups:
        edition = due_edition(frequency, timezone, hour, now)
        if edition is None:
            continue
        if edition not in editions_with_papers:
            editions_with_papers[edition] = has_edition(conn, edition)
        if editions_with_papers[edition]:
            by_edition.setdefault(edition, []).append(sid)
    planned: dict[Edition, int] = {}
    for edition, sids in by_edition.items():
        planned[edition] = plan(conn, edition, sids)
    return planned


def pending_editions(conn: Connection) -> list[Edition]:
    """Editions with rows still waiting to be sent."""
    keys = conn.execute(
        text("SELECT DISTINCT edition FROM digest_sends WHERE status = 'pending' ORDER BY edition")
    ).scalars()
    return [Edition.parse(k) for k in keys]
