"""The search-box parser: every operator, and hostile input that must never raise."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from paperfeed.search.query import MAX_CLAUSES, MAX_QUERY_CHARS, fold, parse_query, title_key


def test_words_phrases_excludes() -> None:
    q = parse_query('diffusion "image generation" -video -"text to speech"')
    assert q.terms == ["diffusion"]
    assert q.phrases == ["image generation"]
    assert q.excludes == ["video", "text to speech"]
    assert q.text == "diffusion image generation"


def test_filters() -> None:
    q = parse_query('author:"Geoffrey Hinton" au:lecun cat:cs.CV category:stat.ML has:code')
    assert q.authors == ["Geoffrey Hinton", "lecun"]
    assert q.categories == ["cs.cv", "stat.ml"]
    assert q.has_code
    assert q.text == ""
    assert not q.is_empty


def test_year_and_date_ranges() -> None:
    assert (parse_query("year:2024").date_from, parse_query("year:2024").date_to) == (
        dt.date(2024, 1, 1),
        dt.date(2024, 12, 31),
    )
    q = parse_query("year:2023..2024")
    assert (q.date_from, q.date_to) == (dt.date(2023, 1, 1), dt.date(2024, 12, 31))
    q = parse_query("year:2022-2023")
    assert (q.date_from, q.date_to) == (dt.date(2022, 1, 1), dt.date(2023, 12, 31))
    q = parse_query("after:2024-05 before:2024-06-10")
    assert (q.date_from, q.date_to) == (dt.date(2024, 5, 1), dt.date(2024, 6, 9))
    q = parse_query("year:2020.. before:2021")
    assert (q.date_from, q.date_to) == (dt.date(2020, 1, 1), dt.date(2020, 12, 31))


def test_bad_filters_become_notices() -> None:
    q = parse_query("year:soon after:yesterday has:wings -author:x transformers")
    assert q.terms == ["transformers"]
    assert q.date_from is None
    assert q.date_to is None
    assert len(q.notices) == 4
    assert "exclude each other" in parse_query("after:2025 before:2024").notices[0]


def test_title_colon_is_text_not_a_filter() -> None:
    q = parse_query("ConvLLaVA: Hierarchical Backbones")
    assert q.terms == ["ConvLLaVA:", "Hierarchical", "Backbones"]
    assert parse_query("Mamba:selective").terms == ["Mamba selective"]


def test_unbalanced_quote_runs_to_end() -> None:
    q = parse_query('graph "neural networks')
    assert q.terms == ["graph"]
    assert q.phrases == ["neural networks"]


def test_limits() -> None:
    q = parse_query("x" * 10_000)
    assert len(q.terms[0]) == MAX_QUERY_CHARS
    assert q.notices
    q = parse_query(" ".join(f"w{i}" for i in range(100)))
    assert len(q.terms) == MAX_CLAUSES


def test_punctuation_and_empty() -> None:
    assert parse_query("").is_empty
    assert parse_query('  - "" ((( ** ').is_empty
    assert parse_query("🎉🎉").is_empty
    assert parse_query("東京 大学").terms == ["東京", "大学"]


def test_fold_and_title_key() -> None:
    assert fold("José Ménard") == "jose menard"
    assert title_key("ConvLLaVA: Hierarchical  Backbones!") == "convllava hierarchical backbones"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_raises(text: str) -> None:
    q = parse_query(text)
    assert isinstance(q.text, str)
    assert len(q.terms) + len(q.phrases) + len(q.excludes) <= MAX_CLAUSES
