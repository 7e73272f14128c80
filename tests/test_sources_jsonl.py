"""paperfeed JSONL: row parsing and the serialiser (the round trip through the catalog is in
test_ingest.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from paperfeed.sources import jsonl

ROW = {
    "arxiv_id": "2405.15738",
    "title": "ConvLLaVA",
    "abstract": "Code at https://github.com/alibaba/conv-llava.",
    "authors": ["Chunjiang Ge", "Sijie Cheng"],
    "published": "2024-05-24",
    "featured_date": "2024-05-27",
    "upvotes": 32,
    "num_comments": 3,
    "github_repo": None,
    "github_stars": None,
    "categories": None,
    "project_page": None,
    "organization": "alibaba",
    "submitted_by": "akhaliq",
    "ai_keywords": ["LMM"],
    "ai_summary": None,
    "feed_dates": ["2024-05-27"],
}


def test_parse_row():
    rec = jsonl.parse_row(ROW)
    assert rec.arxiv_id == "2405.15738" and rec.version is None
    assert rec.published == dt.date(2024, 5, 24) and rec.featured_date == dt.date(2024, 5, 27)
    assert rec.upvotes == 32 and rec.num_comments == 3 and rec.categories == []
    assert rec.submitted_by_name == "akhaliq"
    assert rec.code_url is None  # not named by the source; the catalog may find it in the text
    assert rec.extra == {
        "organization": "alibaba",
        "ai_keywords": ["LMM"],
        "feed_dates": ["2024-05-27"],
    }
    rec = jsonl.parse_row({**ROW, "github_repo": "https://github.com/a/b", "github_stars": 5})
    assert rec.code_url == "https://github.com/a/b" and rec.code_stars == 5
    assert rec.extra[jsonl.CODE_URL_FROM] == "source"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"arxiv_id": None}, "missing arxiv_id"),
        ({"arxiv_id": "12345"}, "bad arxiv_id"),
        ({"title": ""}, "missing title"),
        ({"upvotes": "many"}, "upvotes is not an integer"),
        ({"published": "yesterday"}, "published is not a date"),
        ({"authors": "A, B"}, "authors is not a list"),
    ],
)
def test_bad_rows(change, why):
    with pytest.raises(ValueError, match=why):
        jsonl.parse_row({**ROW, **change})


def test_minimal_row_needs_only_id_and_title():
    rec = jsonl.parse_row({"arxiv_id": "hep-th/9901001v3", "title": "Old"})
    assert (rec.arxiv_id, rec.version, rec.authors, rec.upvotes) == ("hep-th/9901001", 3, [], None)
