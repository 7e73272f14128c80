"""The ingestion pipeline: a source's items -> batches -> one transaction per batch (records
upserted and the source's checkpoint saved together) -> summary. Also owns `ingest_state`.

Because a batch and the checkpoint that follows it commit atomically, a crash or Ctrl-C at any
moment loses nothing and a rerun resumes right after the last committed batch; re-upserting a
record is a no-op (papers.upsert_records is idempotent), so no duplicates either.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from paperfeed import db, papers
from paperfeed.models import IngestState, table_of, utcnow
from paperfeed.sources import PaperRecord, Rejected
from paperfeed.sources.fetch import SourceError
from paperfeed.sources.stream import Checkpoint, Item, file_identity, in_background

state_t = table_of(IngestState)

BATCH_SIZE = 5000  # records per transaction: amortises commits (and WAL rewrites of index
# pages), bounds memory and the work a Ctrl-C throws away
MAX_BATCH_FACTOR = 10  # a source that checkpoints rarely is still flushed at 10 x BATCH_SIZE
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


def run(
    engine: Engine,
    items: Iterable[Item],
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
    pending: Checkpoint | None = None  # latest checkpoint not yet committed
    uses_checkpoints = False

    def flush() -> None:
        nonlocal batch, pending
        if not batch and pending is None:
            return
        with db.transaction(engine) as conn:
            stats = papers.upsert_records(conn, batch)
            if pending is not None and pending.key:
                save_checkpoint(conn, pending.key, pending.state)
        summary.new += stats.new
        summary.updated += stats.updated
        summary.unchanged += stats.unchanged
        if progress and pending is not None:
            progress(pending.done, pending.total, summary)
        batch, pending = [], None

    try:
        for item in items:
            if isinstance(item, PaperRecord):
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
    items = in_background(
        functools.partial(
            reader, path, offset=st.get("offset", 0), line_no=st.get("line", 0), checkpoint_key=key
        )
    )
    return items, point


def parse_day(value: str | None) -> dt.date | None:
    """CLI dates: YYYY-MM-DD (ValueError otherwise)."""
    return dt.date.fromisoformat(value) if value else None
