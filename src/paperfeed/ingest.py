"""The ingestion pipeline: a source's items -> batches -> one transaction per batch (records
upserted and the source's checkpoint saved together) -> summary. Also owns `ingest_state`.

Because a batch and the checkpoint that follows it commit atomically, a crash or Ctrl-C at any
moment loses nothing and a rerun resumes right after the last committed batch; re-upserting a
record is a no-op (papers.upsert_records is idempotent), so no duplicates either.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, delete, insert, select, update

from paperfeed import db, papers, ranking
from paperfeed.models import IngestState, table_of, utcnow
from paperfeed.sources import PaperRecord, Rejected
from paperfeed.sources.fetch import SourceError
from paperfeed.sources.stream import Checkpoint, Item, file_identity

state_t = table_of(IngestState)

BATCH_SIZE = 5000  # records per transaction: amortises commits (and WAL rewrites of index
# pages), bounds memory and the work a Ctrl-C throws away
MAX_BATCH_FACTOR = 10  # a source that checkpoints rarely is still flushed at 10 x BATCH_SIZE
INGEST_CACHE_KIB = 64 * 1024  # SQLite page cache of the ingesting connection (default 2 MiB):
# new rows land all over the author-name, hotness and date indexes; at 300k papers this cache
# makes a bulk ingest ~13% faster (bench/ingest.py). Bounded, so memory stays flat.
KEEP_REJECTIONS = 100  # rejections kept for the report; the rest are only counted


# ---- ingest_state --------------------------------------------------------------------------


def load_checkpoint(conn: Connection, key: str) -> dict[str, Any] | None:
    """The saved state of a resumable ingest, or None."""
    return conn.execute(select(state_t.c.value).where(state_t.c.key == key)).scalar()


def save_checkpoint(conn: Connection, key: str, state: dict[str, Any] | None) -> None:
    """Save (or, with None, clear) a checkpoint; call inside the batch's transaction."""
    if state is None:
        conn.execute(delete(state_t).where(state_t.c.key == key))
        return
    changed = conn.execute(
        update(state_t).where(state_t.c.key == key).values(value=state, updated_at=utcnow())
    ).rowcount
    if not changed:
        conn.execute(insert(state_t).values(key=key, value=state, updated_at=utcnow()))


# ---- the pipeline --------------------------------------------------------------------------


@dataclass
class IngestSummary:
    """What an ingest did; `rejections` keeps the first KEEP_REJECTIONS of `rejected`."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list[Rejected] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None
    resumed_from: str | None = None  # where a resumed ingest picked up ("line 1201", ...)

    @property
    def records(self) -> int:
        return self.new + self.updated + self.unchanged

    def line(self) -> str:
        return (
            f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.rejected} rejected"
        )


ProgressFn = Callable[[int, int | None, IngestSummary], None]


@dataclass(slots=True)
class Ready:
    """A record from ReadAhead, with its row already prepared as a new paper."""

    record: PaperRecord
    new: papers.NewPaper
    made_for: tuple[str, ranking.Weights]  # (dialect, weights) it was prepared with


def run(
    engine: Engine,
    items: Iterable[Item | Ready],
    *,
    batch_size: int = BATCH_SIZE,
    progress: ProgressFn | None = None,
    summary: IngestSummary | None = None,
) -> IngestSummary:
    """Drain a source into the catalog. Flushes a batch when it is full at a checkpoint (so
    the checkpoint is exact), or at MAX_BATCH_FACTOR x batch_size, and at the end. A source
    failure commits what was received, then stops (`error`); Ctrl-C stops at once, dropping
    only the uncommitted batch (`interrupted`); either way the rerun resumes from the last
    committed checkpoint."""
    summary = summary or IngestSummary()
    batch: list[PaperRecord] = []
    ready: list[papers.NewPaper] = []  # prepared rows of the batch, when all have one
    made_for: tuple[str, ranking.Weights] | None = None
    pending: Checkpoint | None = None  # latest checkpoint not yet committed
    uses_checkpoints = False

    def flush() -> None:
        nonlocal batch, ready, pending
        if not batch and pending is None:
            return
        prepared = None
        if made_for is not None and len(ready) == len(batch):
            prepared = papers.Prepared(made_for[0], made_for[1], ready)
        with db.transaction(engine) as conn:
            if conn.dialect.name == "sqlite":  # per connection; takes effect at once
                conn.exec_driver_sql(f"PRAGMA cache_size=-{INGEST_CACHE_KIB}")
            stats = papers.upsert_records(conn, batch, prepared)
            if pending is not None and pending.key:
                save_checkpoint(conn, pending.key, pending.state)
        summary.new += stats.new
        summary.updated += stats.updated
        summary.unchanged += stats.unchanged
        if progress and pending is not None:
            progress(pending.done, pending.total, summary)
        batch, ready, pending = [], [], None

    try:
        for item in items:
            if isinstance(item, Ready | PaperRecord):
                if isinstance(item, Ready):
                    batch.append(item.record)
                    ready.append(item.new)
                    made_for = item.made_for
                else:
                    batch.append(item)
                if len(batch) >= batch_size * (MAX_BATCH_FACTOR if uses_checkpoints else 1):
                    flush()
            elif isinstance(item, Checkpoint):
                uses_checkpoints = True
                pending = item
                if len(batch) >= batch_size:
                    flush()
            else:
                summary.rejected += 1
                if len(summary.rejections) < KEEP_REJECTIONS:
                    summary.rejections.append(item)
        flush()
    except KeyboardInterrupt:
        summary.interrupted = True
    except SourceError as exc:
        # Everything received before the failure is sound: commit it with the last
        # checkpoint, so the rerun starts at the page that failed.
        summary.error = str(exc)
        flush()
    return summary


# ---- reading ahead in a second process -----------------------------------------------------

READ_AHEAD_RECORDS = 1000  # records per message from the reader process (~1.5 MB pickled)
READ_AHEAD_MESSAGES = 8  # messages queued in the reader: it goes on through the writer's commits


def can_read_ahead() -> bool:
    """Whether a reader process would have a core of its own (and fork exists)."""
    if not hasattr(os, "fork"):
        return False
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cpus or 1) > 1


class ReadAhead:
    """A file source read, parsed and prepared (papers.prepare_new) in a forked reader
    process while this one writes to the database: a bulk ingest's two halves on two cores
    (bench/ingest.py measures the gain).

    The writer sees exactly the items the source yields, in order, so batches and
    checkpoints are what they would be in one process. At most READ_AHEAD_MESSAGES are in
    flight, so memory stays flat. Errors in the reader are raised here; if the reader dies,
    SourceError: what arrived before it is committed and a rerun resumes from there.
    """

    def __init__(self, engine: Engine, items: Iterable[Item]) -> None:
        with db.read(engine) as conn:
            weights = ranking.active_weights(conn)
        ctx = multiprocessing.get_context("fork")  # the reader inherits `items` as it is
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_reader, args=(items, engine.dialect, weights, send), daemon=True
        )
        # Objects that exist now are never garbage: keep the collector off them in both
        # processes (and off the reader's copy-on-write pages).
        gc.freeze()
        self._proc.start()
        send.close()  # the reader holds the only write end: its death is an EOF here
        self._made_for = (engine.dialect.name, weights)

    def __iter__(self) -> Iterator[Item | Ready]:
        try:
            while True:
                try:
                    kind, entries, new = self._recv.recv()
                except (EOFError, OSError):
                    self._proc.join(timeout=5)
                    raise SourceError(
                        f"the reader process stopped unexpectedly (exit {self._proc.exitcode})"
                    ) from None
                if kind == "end":
                    return
                if kind == "error":
                    raise entries
                prepared = iter(new)
                for e in entries:
                    if type(e) is tuple:
                        yield Ready(PaperRecord(*e), next(prepared), self._made_for)
                    elif type(e) is list:
                        yield Checkpoint(*e)
                    else:
                        yield e
        finally:
            self.close()

    def close(self) -> None:
        self._recv.close()
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()
        gc.unfreeze()  # a long-lived caller (a worker) must not keep today's objects forever


def _reader(items: Iterable[Item], dialect: Dialect, weights: ranking.Weights, out: Pipe) -> None:
    """The reader process: put (kind, entries, prepared rows) messages until the source
    ends. Records travel as tuples of their fields and checkpoints as lists: pickling
    dataclasses costs several times more."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the writer's to handle
    # A thread pickles and writes (the GIL is free while it waits on the pipe), so this one
    # goes on parsing while the writer commits.
    outbox: queue.Queue[tuple[str, Any, Any] | None] = queue.Queue(READ_AHEAD_MESSAGES)

    def feed() -> None:
        while (message := outbox.get()) is not None:
            out.send(message)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    entries: list[Any] = []
    records: list[PaperRecord] = []

    def send() -> None:
        nonlocal entries, records
        outbox.put(("items", entries, papers.prepare_new(records, dialect, weights).papers))
        entries, records = [], []

    try:
        for item in items:
            if isinstance(item, PaperRecord):
                records.append(item)
                entries.append(tuple(item.__dict__.values()))
            elif isinstance(item, Checkpoint):
                entries.append([item.key, item.state, item.done, item.total])
            else:
                entries.append(item)
            # Messages end at a checkpoint where the source has them, like the batches.
            full = len(records) >= READ_AHEAD_RECORDS
            if (full and isinstance(item, Checkpoint)) or len(entries) >= 4 * READ_AHEAD_RECORDS:
                send()
        if entries:
            send()
        outbox.put(("end", None, None))
    except BaseException as exc:  # every failure goes to the writer, after what came before
        try:
            if entries:
                send()
        except Exception:  # noqa: S110 - the failure below is what the writer must hear
            pass
        try:
            pickle.dumps(exc)
        except Exception:  # not picklable: its text is
            exc = SourceError(f"{type(exc).__name__}: {exc}")
        outbox.put(("error", exc, None))
    finally:
        outbox.put(None)
        feeder.join()  # everything sent is in the pipe before the process exits
        out.close()


# ---- resumable sources ---------------------------------------------------------------------


@dataclass
class Resume:
    """Where a keyed ingest starts: its saved state (None: from the beginning) and a note."""

    key: str
    state: dict[str, Any] | None
    note: str | None = None


def resume_point(engine: Engine, key: str, *, restart: bool = False) -> Resume:
    """The checkpoint under `key`, or a fresh start (`restart` drops the saved one)."""
    with db.transaction(engine) as conn:
        if restart:
            save_checkpoint(conn, key, None)
            return Resume(key, None)
        return Resume(key, load_checkpoint(conn, key))


def file_resume(engine: Engine, key: str, path: Path, *, restart: bool) -> Resume:
    """Like resume_point, but a checkpoint taken on a different file (size or mtime changed)
    is ignored: offsets into another file mean nothing."""
    point = resume_point(engine, key, restart=restart)
    st = point.state
    if st is None:
        return point
    ident = file_identity(path)
    if st.get("size") != ident["size"] or st.get("mtime_ns") != ident["mtime_ns"]:
        return Resume(key, None, "the file changed since the last checkpoint; starting over")
    return Resume(key, st, f"resuming after line {st.get('line')} (use --restart to start over)")


def from_file(
    engine: Engine,
    path: Path,
    reader: Callable[..., Iterator[Item]],
    key: str,
    *,
    restart: bool = False,
) -> tuple[Iterator[Item], Resume]:
    """A resumable JSONL-style file source (snapshot, our JSONL) and where it starts."""
    point = file_resume(engine, key, path, restart=restart)
    st = point.state or {}
    items = reader(path, offset=st.get("offset", 0), line_no=st.get("line", 0), checkpoint_key=key)
    return items, point


def parse_day(value: str | None) -> dt.date | None:
    """CLI dates: YYYY-MM-DD (ValueError otherwise)."""
    return dt.date.fromisoformat(value) if value else None
