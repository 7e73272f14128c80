"""Kaggle arXiv snapshot: row parsing (versions, nulls, authors) and the resumable reader."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import pytest

from paperfeed.sources import PaperRecord, Rejected, snapshot
from paperfeed.sources.stream import Checkpoint


def rows(shared_data: Path, n: int) -> list[dict]:
    with (shared_data / "arxiv_snapshot_sample.jsonl").open() as f:
        return [json.loads(line) for line in itertools.islice(f, n)]


def test_kaggle_row(shared_data: Path):
    rec = snapshot.parse_row(rows(shared_data, 1)[0])
    assert rec.arxiv_id == "0704.0001" and rec.source == "arxiv_snapshot"
    assert rec.title == (
        "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    )
    assert rec.authors == ["C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C. -P. Yuan"]
    assert rec.version == 2
    assert rec.versions == [
        {"version": 1, "created": "2007-04-02"},
        {"version": 2, "created": "2007-07-24"},
    ]
    assert rec.published == dt.date(2007, 4, 2) and rec.updated == dt.date(2007, 7, 24)
    assert rec.categories == ["hep-ph"] and rec.doi == "10.1103/PhysRevD.76.013009"
    assert rec.journal_ref == "Phys.Rev.D76:013009,2007" and rec.license is None
    assert rec.abstract and rec.abstract.startswith("A fully differential calculation")


def test_listing_row_without_versions(shared_data: Path):
    row = next(r for r in rows(shared_data, 1200) if not r["versions"])
    rec = snapshot.parse_row(row)
    assert rec.versions == [] and rec.version is None and rec.published is None
    assert rec.updated == dt.date.fromisoformat(row["update_date"])
    assert rec.doi is None and rec.journal_ref is None and rec.license is None
    assert len(rec.categories) >= 1 and rec.authors


def test_missing_pieces_and_fallbacks():
    base = {"id": "2401.00001", "title": "T", "versions": None, "authors_parsed": None}
    rec = snapshot.parse_row({**base, "authors": "A. One, B. Two and C. Three"})
    assert rec.authors == ["A. One", "B. Two", "C. Three"] and rec.versions == []
    rec = snapshot.parse_row(
        {
            **base,
            "versions": [
                {"version": "v2", "created": "Sat, 13 Dec 2008 17:26:00 GMT"},
                {"version": "v1", "created": "garbage"},
            ],
        }
    )
    assert rec.version == 2 and rec.published is None and rec.updated == dt.date(2008, 12, 13)
    assert snapshot.parse_version_date("Mon, 2 Apr 2007 19:18:42 GMT") == dt.date(2007, 4, 2)
    for bad, why in [
        ({**base, "title": None}, "missing title"),
        ({**base, "title": "  "}, "missing title"),
        ({**base, "id": "nonsense"}, "bad id"),
        ({"title": "x"}, "missing id"),
    ]:
        with pytest.raises(ValueError, match=why):
            snapshot.parse_row(bad)


def test_malformed_lines_rejected_with_positions(tmp_path: Path, shared_data: Path):
    good = [json.dumps(r) for r in rows(shared_data, 4)]
    path = tmp_path / "s.jsonl"
    lines = [
        good[0],
        good[1][: len(good[1]) // 2],  # truncated line
        "",  # blank lines are not records
        json.dumps({**json.loads(good[2]), "title": None}),
        "[1, 2]",
        good[3],
    ]
    path.write_text("\n".join(lines) + "\n")
    items = list(snapshot.read_snapshot(path, checkpoint_key="k"))
    recs = [i.arxiv_id for i in items if isinstance(i, PaperRecord)]
    assert recs == ["0704.0001", "0704.0004"]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r.position for r in rejected] == ["line 2", "line 4", "line 5"]
    assert "invalid JSON" in rejected[0].reason and "missing title" in rejected[1].reason


def test_checkpoints_resume_exactly(tmp_path: Path, shared_data: Path):
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(shared_data, 10)))
    items = list(snapshot.read_snapshot(path, checkpoint_key="k"))
    cps = [i for i in items if isinstance(i, Checkpoint)]
    third = cps[2].state
    assert third is not None and third["line"] == 3 and third["size"] == path.stat().st_size
    rest = list(snapshot.read_snapshot(path, offset=third["offset"], line_no=third["line"]))
    assert [r.arxiv_id for r in rest if isinstance(r, PaperRecord)] == [
        f"0704.{n:04d}" for n in range(4, 11)
    ]
    assert cps[-1].state is None and cps[-1].done == path.stat().st_size
