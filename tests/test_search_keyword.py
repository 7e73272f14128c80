"""The tantivy keyword backend's query shape: flat OR, dense terms, typo expansion, author check."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperfeed.search import keyword
from paperfeed.search.keyword import KeywordDoc, TantivyBackend
from paperfeed.search.query import parse_query


def _doc(i: int, title: str, abstract: str, authors: list[str] | None = None) -> KeywordDoc:
    return KeywordDoc(i, title, abstract, authors or ["Ada Lovelace"], ["cs.LG"], None, False)


@pytest.fixture
def backend(tmp_path: Path) -> TantivyBackend:
    """40 papers: 'the' in all, 'model' in 16 (40%), 'diffusion' in 4, 'quantum' in 2."""
    docs = []
    for i in range(1, 41):
        words = ["the", "results", f"filler{i}"]
        if i <= 16:
            words.append("model")
        if i in (1, 2, 17, 18):
            words.append("diffusion")
        if i in (30, 31):
            words += ["quantum", "entanglement"]
        docs.append(_doc(i, f"Paper {i}", " ".join(words), ["Grace Hopper"] if i == 30 else None))
    b = TantivyBackend(tmp_path / "kw")
    b.upsert(docs)
    return b


def _scores(b: TantivyBackend, text: str) -> dict[int, float]:
    return dict(b.search(parse_query(text), 100).hits)


def test_two_word_query_keeps_a_common_word(backend: TantivyBackend) -> None:
    # 'model' is in 40% of the papers, yet it is a large share of this query's weight: kept.
    ranked = [pid for pid, _ in backend.search(parse_query("diffusion model"), 10).hits]
    assert ranked[:2] == sorted(ranked[:2]) and set(ranked[:2]) == {1, 2}  # both words
    assert set(ranked[2:4]) == {17, 18}  # 'diffusion' alone


def test_long_query_drops_words_in_every_paper(backend: TantivyBackend) -> None:
    with_the = _scores(backend, "the quantum entanglement results diffusion")
    without = _scores(backend, "quantum entanglement diffusion")
    assert set(with_the) == set(without) and with_the.keys() == {1, 2, 17, 18, 30, 31}
    for pid, score in without.items():
        assert with_the[pid] == pytest.approx(score, rel=1e-6)


def test_no_dense_cut_keeps_every_word(
    backend: TantivyBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyword, "DENSE_SHARE", 0.0)
    assert len(_scores(backend, "the quantum entanglement results diffusion")) == 40


def test_repeated_word_counts_twice(backend: TantivyBackend) -> None:
    once, twice = _scores(backend, "quantum"), _scores(backend, "quantum quantum")
    assert once.keys() == twice.keys() == {30, 31}
    assert twice[30] == pytest.approx(2 * once[30], rel=1e-5)


def test_typo_expansion_only_in_short_queries(backend: TantivyBackend) -> None:
    assert set(_scores(backend, "quantun")) == {30, 31}  # one edit away
    assert _scores(backend, "quantun zzqqa zzqqb zzqqc zzqqd") == {}  # five words: none


def test_author_check_without_such_author(backend: TantivyBackend) -> None:
    q = parse_query("author:hopper")
    assert backend.filter_ids(q, [29, 30, 31]) == {30}
    assert backend.filter_ids(parse_query("author:nobody"), [29, 30, 31]) == set()
    assert backend.filter_ids(parse_query('author:"grace nobody"'), [30]) == set()
