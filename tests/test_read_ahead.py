"""The bulk-ingest fast path: records prepared as new papers in a reader process
(papers.prepare_new, ingest.ReadAhead) must land exactly as the one-process path writes them,
and a reader that fails or dies must lose nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select

from paperfeed import db, ingest, papers, ranking
from paperfeed.models import Paper, PaperAuthor, PaperCategory
from paperfeed.sources import PaperRecord, snapshot
from paperfeed.sources.fetch import SourceError
from paperfeed.sources.stream import Checkpoint, Item


def snapshot_records(shared_data: Path, n: int, start: int = 0) -> list[PaperRecord]:
    items = snapshot.read_snapshot(shared_data / "arxiv_snapshot_sample.jsonl")
    records = (r for r in items if isinstance(r, PaperRecord))
    return list(itertools.islice(records, start, start + n))


def dump(engine: Engine) -> dict[str, Any]:
    """Every paper (by arXiv id, timestamps left out) with its author and category rows."""
    with db.read(engine) as conn:
        rows = conn.execute(select(Paper.__table__)).mappings().all()
        ids = {r["id"]: r["arxiv_id"] for r in rows}
        authors = conn.execute(select(PaperAuthor.__table__)).all()
        cats = conn.execute(select(PaperCategory.__table__)).all()
    skip = {"id", "created_at", "modified_at", "hotness"}
    return {
        "papers": {r["arxiv_id"]: {k: v for k, v in r.items() if k not in skip} for r in rows},
        "hotness": {r["arxiv_id"]: r["hotness"] for r in rows},
        "authors": sorted((ids[a.paper_id], a.position, a.name, a.name_key) for a in authors),
        "categories": sorted((ids[c.paper_id], c.category) for c in cats),
    }


def test_prepared_rows_land_exactly_as_the_plain_path(
    engine: Engine, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sample's first 1,001 records have version dates, the rest none.
    records = snapshot_records(shared_data, 300) + snapshot_records(shared_data, 300, 1001)
    undated = sum(r.published is None for r in records)
    assert 0 < undated < len(records)  # both kinds of hotness anchor are covered
    featured = dataclasses.replace(
        records[0],
        arxiv_id="2401.00001",
        featured_date=dt.date(2024, 1, 3),
        upvotes=17,
        num_comments=2,
        code_url="https://github.com/a/b",
        code_stars=40,
        source="hf",
    )
    records += [featured, dataclasses.replace(records[1], title="A later title", version=9)]
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, records)
    plain = dump(engine)
    with db.transaction(engine) as conn:
        conn.execute(delete(PaperAuthor.__table__))
        conn.execute(delete(PaperCategory.__table__))
        conn.execute(delete(Paper.__table__))
        prepared = papers.prepare_new(records, conn.dialect, ranking.active_weights(conn))
        calls = 0
        new_row = papers._new_row

        def counting(rec: PaperRecord) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            return new_row(rec)

        monkeypatch.setattr(papers, "_new_row", counting)
        stats = papers.upsert_records(conn, records, prepared)
    assert stats.new == len(records) - 1
    assert calls == 2  # only the record seen twice in the batch took the merging path
    fast = dump(engine)
    assert fast["papers"] == plain["papers"]
    assert fast["authors"] == plain["authors"]
    assert fast["categories"] == plain["categories"]
    for arxiv_id, hot in plain["hotness"].items():  # undated papers age from their insert time
        assert fast["hotness"][arxiv_id] == pytest.approx(hot, abs=1e-3)
    assert fast["hotness"]["2401.00001"] == plain["hotness"]["2401.00001"]


def test_prepared_rows_made_for_other_weights_are_not_used(engine: Engine, shared_data: Path):
    records = snapshot_records(shared_data, 40)
    with db.transaction(engine) as conn:
        stale = papers.prepare_new(records, conn.dialect, ranking.Weights(vote=9.0))
        marked = [((*p[0][:-1], 123.0), *p[1:]) for p in stale.papers]  # a recognisable hotness
        papers.upsert_records(conn, records, papers.Prepared(stale.dialect, stale.weights, marked))
        hot = conn.execute(select(func.max(Paper.hotness))).scalar_one()
    assert hot != 123.0  # made for other weights: the writer computed every row itself


def sqlite_engine(path: Path) -> Engine:
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    return engine


def test_read_ahead_ingest_equals_one_process(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "part.jsonl"
    with (shared_data / "arxiv_snapshot_sample.jsonl").open() as src:
        lines = list(itertools.islice(src, 2500))
    lines.insert(700, '{"id": "0704.9999", "title": \n')  # a malformed line, rejected
    path.write_text("".join(lines))
    summaries, dumps = [], []
    for name, ahead in (("one", False), ("two", True)):
        engine = sqlite_engine(tmp_path / f"{name}.db")
        items, _ = ingest.from_file(engine, path, snapshot.read_snapshot, "k")
        source = ingest.ReadAhead(engine, items) if ahead else items
        summaries.append(ingest.run(engine, source, batch_size=300))
        dumps.append(dump(engine))
    one, two = summaries
    assert (two.new, two.rejected, two.rejections) == (one.new, one.rejected, one.rejections)
    assert two.new == 2500 and two.rejected == 1
    assert dumps[1]["papers"] == dumps[0]["papers"]
    assert dumps[1]["authors"] == dumps[0]["authors"]


def source_then(records: list[PaperRecord], end: str) -> Iterator[Item]:
    """A source that yields records with a checkpoint after each, then fails or dies."""
    for n, rec in enumerate(records, 1):
        yield rec
        yield Checkpoint("test", {"n": n}, done=n)
    if end == "error":
        raise SourceError("the archive went away")
    time.sleep(1.0)  # what the reader sent has reached the writer
    os._exit(3)  # the reader process dies without a word


@pytest.mark.parametrize(
    ("end", "message"),
    [("error", "the archive went away"), ("die", "reader process stopped unexpectedly (exit 3)")],
)
def test_reader_failure_commits_what_arrived(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str, message: str
) -> None:
    monkeypatch.setattr(ingest, "READ_AHEAD_RECORDS", 20)
    engine = sqlite_engine(tmp_path / "x.db")
    records = snapshot_records(shared_data, 130)
    summary = ingest.run(engine, ingest.ReadAhead(engine, source_then(records, end)), batch_size=50)
    assert summary.error is not None and message in summary.error
    # An error: the reader sends what it had first. A dead reader: the whole messages (of 20
    # records) it got out arrive; either way the checkpoint says where a rerun goes on.
    arrived = summary.new
    if end == "error":
        assert arrived == len(records)
    else:
        assert arrived % 20 == 0 and 0 < arrived < len(records)
    assert ingest.resume_point(engine, "test").state == {"n": arrived}
    with db.read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(Paper)).scalar_one() == arrived


def test_read_ahead_on_the_suite_database(engine: Engine, shared_data: Path, tmp_path: Path):
    """The suite's database (PostgreSQL in the PostgreSQL pass): the reader is forked while
    the writer's pool holds connections; a rerun finds everything unchanged."""
    path = tmp_path / "part.jsonl"
    with (shared_data / "arxiv_snapshot_sample.jsonl").open() as src:
        path.write_text("".join(itertools.islice(src, 990, 1990)))  # dated and undated
    for expected in ((1000, 0), (0, 1000)):
        items, _ = ingest.from_file(engine, path, snapshot.read_snapshot, "k")
        summary = ingest.run(engine, ingest.ReadAhead(engine, items), batch_size=200)
        assert (summary.new, summary.unchanged) == expected, summary
    assert ingest.resume_point(engine, "k").state is None  # finished: the checkpoint is cleared
    with db.read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(Paper)).scalar_one() == 1000
