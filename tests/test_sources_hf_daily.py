"""Hugging Face daily papers: the three recorded API shapes, and the live fetch on loopback."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from fixture_server import Reply, replay_server
from paperfeed.sources import PaperRecord, Rejected, hf_daily
from paperfeed.sources.fetch import Fetcher, SourceError

DATES = ("2024-05-27", "2025-06-10", "2026-08-21")


@pytest.fixture
def fixtures(shared_data: Path) -> Path:
    return shared_data / "fixtures" / "hf_daily_papers"


@pytest.mark.parametrize("date", DATES)
def test_every_shape_matches_the_normalised_dataset(fixtures: Path, shared_data: Path, date: str):
    """hf_daily_papers.jsonl was normalised from these very responses: the parser agrees."""
    expected = {}
    with (shared_data / "hf_daily_papers.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            if date in row["feed_dates"]:
                expected[row["arxiv_id"]] = row
    body = (fixtures / f"api_daily_papers_date_{date}.json").read_bytes()
    recs = list(hf_daily.parse_daily(body))
    assert all(isinstance(r, PaperRecord) for r in recs)
    assert {r.arxiv_id for r in recs} == set(expected)
    for rec in recs:
        assert isinstance(rec, PaperRecord)
        row = expected[rec.arxiv_id]
        assert rec.title == row["title"] and rec.abstract == row["abstract"]
        assert rec.authors == row["authors"]
        assert rec.published and rec.published.isoformat() == row["published"]
        assert rec.featured_date and rec.featured_date.isoformat() == row["featured_date"]
        assert (rec.upvotes, rec.num_comments) == (row["upvotes"], row["num_comments"])
        assert (rec.code_url, rec.code_stars) == (row["github_repo"], row["github_stars"])
        assert rec.project_page == row["project_page"]
        assert rec.submitted_by_name == row["submitted_by"]
        assert rec.extra.get("organization") == row["organization"]
        assert rec.extra.get("ai_summary") == row["ai_summary"]
        assert rec.extra.get("ai_keywords") == row["ai_keywords"]


def test_current_shape_fields(fixtures: Path):
    recs = list(
        hf_daily.parse_daily((fixtures / "api_daily_papers_date_2026-08-21.json").read_bytes())
    )
    rec = recs[0]
    assert isinstance(rec, PaperRecord)
    assert rec.arxiv_id == "2608.19880" and rec.upvotes == 163 and rec.num_comments == 1
    assert rec.code_url == "https://github.com/google-research/envharness" and rec.code_stars == 8
    assert rec.project_page == "https://envharness.com/" and rec.submitted_by_name == "taesiri"
    assert rec.featured_date == dt.date(2026, 8, 21)


def test_bad_entries_and_bad_documents():
    good = {"paper": {"id": "2405.15738", "title": "T", "summary": "S", "upvotes": 1}}
    body = json.dumps(
        [good, {"paper": {"id": "2405.1"}}, 7, {"paper": {"id": "2405.15739"}}, {"data": 1}]
    )
    items = list(hf_daily.parse_daily(body, feed_date=dt.date(2024, 5, 27)))
    assert isinstance(items[0], PaperRecord) and items[0].featured_date == dt.date(2024, 5, 27)
    assert [i.position for i in items if isinstance(i, Rejected)] == [
        "entry 2",
        "entry 3",
        "entry 4",
        "entry 5",
    ]
    wrapped = json.dumps({"status": "ok", "date": "2025-01-10", "count": 1, "data": [good]})
    assert len(list(hf_daily.parse_daily(wrapped))) == 1
    with pytest.raises(ValueError, match="not JSON"):
        list(hf_daily.parse_daily(b'[{"paper": '))
    with pytest.raises(ValueError, match="expected a JSON list"):
        list(hf_daily.parse_daily(b'{"error": "x"}'))


def test_fetch_for_a_date(fixtures: Path):
    body = (fixtures / "api_daily_papers_date_2025-06-10.json").read_bytes()
    with replay_server() as srv:
        srv.add(
            "/api/daily_papers",
            {"date": "2025-06-10"},
            Reply(200, body, content_type="application/json"),
        )
        with Fetcher(timeout_s=5, max_retries=0) as f:
            got = hf_daily.fetch_daily(f, srv.url + "/api/daily_papers", dt.date(2025, 6, 10))
            assert got == body
            with pytest.raises(SourceError, match="HTTP 404"):
                hf_daily.fetch_daily(f, srv.url + "/api/daily_papers", dt.date(2025, 6, 11))
