"""Search end to end on a small real catalog and the real ONNX model.

SQLite pass: tantivy + vector files. PostgreSQL pass: the database's full-text search + pgvector.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, update
from typer.testing import CliRunner

from paperfeed import db
from paperfeed.config import Settings
from paperfeed.models import Embedding, Paper
from paperfeed.search import index_pending, search, similar
from paperfeed.search.embedder import (
    MODEL_SHA256,
    Embedder,
    ModelIntegrityError,
    get_embedder,
    integer_graph,
    model_path,
    pack_sentences,
    sentence_cosines,
    sentences,
)
from paperfeed.search.vectors import load_index, write_index
from search_catalog import PAPERS, add_papers, edit_paper, paper_id


@pytest.fixture(scope="module")
def catalog(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[tuple[Settings, Engine]]:
    """One indexed catalog shared by the read-only tests of this module (SQLite or PostgreSQL)."""
    settings = Settings(database_url=module_database_url, data_dir=tmp_path_factory.mktemp("data"))
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
    index_pending(engine, settings)
    yield settings, engine
    engine.dispose()


def ids(catalog: tuple[Settings, Engine], query: str, **kw: object) -> list[str]:
    settings, engine = catalog
    with db.read(engine) as conn:
        return [h.arxiv_id for h in search(conn, settings, query, **kw).hits]  # type: ignore[arg-type]


def page(catalog: tuple[Settings, Engine], query: str, **kw: object):  # type: ignore[no-untyped-def]
    settings, engine = catalog
    with db.read(engine) as conn:
        return search(conn, settings, query, **kw)  # type: ignore[arg-type]


def test_model_is_verified_and_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = get_embedder()
    v = emb.embed(["a cat sits on the mat", "a kitten on a rug", "lattice QCD"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    # Bucketed batching changes the order of work, never the vectors.
    assert np.allclose(
        emb.embed(["b", "a longer text here"], bucketed=False),
        emb.embed(["b", "a longer text here"]),
        atol=1e-5,
    )
    tampered = tmp_path / "model.onnx"
    tampered.write_bytes(model_path().read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelIntegrityError, match=MODEL_SHA256):
        Embedder(path=tampered)


def test_integer_graph_keeps_the_vectors() -> None:
    """The 36 weight MatMuls become integer ones over the packaged int8 weights (the 12
    attention products stay float), and the vectors stay those of the packaged graph."""
    import onnx

    ops = Counter(n.op_type for n in onnx.load_from_string(integer_graph(model_path())).graph.node)
    assert ops["MatMulInteger"] == 36
    assert ops["MatMul"] == 12
    texts = [
        "graph neural networks",
        "Vitamin B12 deficiency raises homocysteine.",
        PAPERS[0]["abstract"],
    ]
    packaged = Embedder(integer=False).embed(texts)
    ours = get_embedder().embed(texts)
    assert get_embedder().model_id != Embedder(integer=False).model_id  # re-embedded on upgrade
    assert (np.sum(packaged * ours, axis=1) > 0.98).all()
    # The integer graph's vectors for other texts stay far apart, as the packaged graph's do.
    assert ours[0] @ ours[1] < 0.5


def test_keyword_title_beats_abstract(catalog) -> None:  # type: ignore[no-untyped-def]
    found = ids(catalog, "diffusion", mode="keyword")
    assert found[:2] == ["2006.11239", "2011.13456"]  # title match, then abstract-only match


def test_hidden_never_appears(catalog) -> None:  # type: ignore[no-untyped-def]
    for mode in ("hybrid", "keyword", "semantic"):
        assert "2403.00003" not in ids(catalog, "diffusion secrets moderators", mode=mode)
    assert ids(catalog, "2403.00003") == [] or "2403.00003" not in ids(catalog, "2403.00003")


@pytest.mark.parametrize(
    "query",
    ["2405.15738", "arXiv:2405.15738v2", "https://arxiv.org/abs/2405.15738", "2405.15738v1"],
)
def test_arxiv_id_first(catalog, query: str) -> None:  # type: ignore[no-untyped-def]
    assert ids(catalog, query)[0] == "2405.15738"


def test_did_you_mean_arxiv_id(catalog) -> None:  # type: ignore[no-untyped-def]
    p = page(catalog, "that 2405 15738 paper")
    assert p.did_you_mean == "2405.15738"
    p = page(catalog, "9999.99999")
    assert "not in this catalog" in (p.message or "")


def test_exact_title_first(catalog) -> None:  # type: ignore[no-untyped-def]
    assert ids(catalog, "deep residual learning for image recognition")[0] == "1512.03385"
    assert ids(catalog, "Attention is all you need")[0] == "1706.03762"


def test_author_query(catalog) -> None:  # type: ignore[no-untyped-def]
    assert ids(catalog, "Ashish Vaswani")[0] == "1706.03762"
    assert ids(catalog, "Jose Menard")[0] == "2401.00001"


def test_typo_in_long_words(catalog) -> None:  # type: ignore[no-untyped-def]
    assert ids(catalog, "difusion probabilstic", mode="keyword")[0] == "2006.11239"
    assert ids(catalog, "transformr architectur")[:3].count("1706.03762") == 1


def test_semantic_without_shared_words(catalog) -> None:  # type: ignore[no-untyped-def]
    query = "turning random noise into pictures"
    assert "2006.11239" not in ids(catalog, query, mode="keyword")
    assert "2006.11239" in ids(catalog, query, mode="semantic")[:3]
    assert "2006.11239" in ids(catalog, query)[:3]


def test_fusion_keeps_both_sides(catalog) -> None:  # type: ignore[no-untyped-def]
    hybrid = ids(catalog, "plants drought photosynthesis")
    assert hybrid[0] == "2402.00002"


def test_filters(catalog) -> None:  # type: ignore[no-untyped-def]
    assert set(ids(catalog, "cat:cs.CL")) == {"2405.15738", "1706.03762", "1810.04805"}
    assert "2402.00002" not in ids(catalog, "cat:cs")
    assert ids(catalog, "author:menard") == ["2401.00001"]
    assert ids(catalog, 'author:"josé ménard"') == ["2401.00001"]
    assert set(ids(catalog, "year:2023..2024")) == {
        "2405.15738",
        "2312.00752",
        "2401.00001",
        "2402.00002",
    }
    assert ids(catalog, "after:2024-05-01") == ["2405.15738"]
    assert set(ids(catalog, "before:2016")) == {"1512.03385"}
    coded = ids(catalog, "has:code transformer")
    assert coded
    assert set(coded) <= {"2405.15738", "2006.11239", "1810.04805", "2312.00752"}


def test_phrase_and_exclude(catalog) -> None:  # type: ignore[no-untyped-def]
    assert ids(catalog, '"image recognition"') == ["1512.03385"]
    assert ids(catalog, '"recognition image"') == []
    found = ids(catalog, "diffusion -score")
    assert "2006.11239" in found
    assert "2011.13456" not in found
    # The keyword side alone (on PostgreSQL the excluded word once took the bind parameter
    # of the first searched word, so "diffusion -score" excluded every diffusion paper).
    assert ids(catalog, "diffusion -score", mode="keyword") == ["2006.11239"]
    assert ids(catalog, "residual -diffusion", mode="keyword") == ["1512.03385"]


def test_snippet_highlights_safely(catalog) -> None:  # type: ignore[no-untyped-def]
    hit = page(catalog, "hierarchical backbone <script>").hits[0]
    assert "<mark>hierarchical</mark>" in hit.snippet_html
    assert "<script>" not in hit.snippet_html


def test_paging(catalog) -> None:  # type: ignore[no-untyped-def]
    first = page(catalog, "networks models", limit=2)
    second = page(catalog, "networks models", limit=2, offset=2)
    assert first.has_next
    assert not {h.arxiv_id for h in first.hits} & {h.arxiv_id for h in second.hits}


def test_similar_excludes_self(catalog) -> None:  # type: ignore[no-untyped-def]
    settings, engine = catalog
    with db.read(engine) as conn:
        ddpm = paper_id(conn, "2006.11239")
        found = [h.arxiv_id for h in similar(conn, settings, ddpm, 3)]
    assert "2006.11239" not in found
    assert "2403.00003" not in found  # hidden
    assert found[0] == "2011.13456"  # the other diffusion paper


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=200) | st.sampled_from(['"', "-", "AND OR", "a:b:c", "((", "\\", "*~^"]))
def test_bad_input_never_raises(catalog, text: str) -> None:  # type: ignore[no-untyped-def]
    p = page(catalog, text)
    assert p.hits or p.message


def test_incremental_indexing(settings: Settings, engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        pytest.skip("the PostgreSQL counterpart is tests/test_search_pg.py")
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[:3])
    first = index_pending(engine, settings)
    assert (first.embedded, first.keyword_updated) == (3, 3)
    again = index_pending(engine, settings)
    assert (again.embedded, again.keyword_updated, again.vectors_rebuilt) == (0, 0, False)
    with db.transaction(engine) as conn:
        edit_paper(conn, "1706.03762", title="Photosynthesis Is All You Need")
        edit_paper(conn, "2405.15738", upvotes=7)  # not embedded text: no new vector
        add_papers(conn, [PAPERS[8]])
    third = index_pending(engine, settings)
    assert third.embedded == 2  # the retitled paper and the new one
    assert third.keyword_updated == 3
    assert third.vectors == 4
    with db.read(engine) as conn:
        hits = search(conn, settings, "photosynthesis", mode="keyword").hits
        assert hits[0].arxiv_id == "1706.03762"
    # Hiding without a modified_at bump is caught by the count check.
    with db.transaction(engine) as conn:
        conn.execute(update(Paper).where(Paper.arxiv_id == "2006.11239").values(hidden=True))
    fourth = index_pending(engine, settings)
    assert fourth.keyword_updated == 3
    with db.read(engine) as conn:
        assert search(conn, settings, "denoising", mode="keyword").hits == []


def test_papers_hidden_or_deleted_after_indexing_never_show(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the next `paperfeed index`, hidden papers sit in the indexes: search drops them
    (read from ix_papers_hidden, or past HIDDEN_READ_MAX by checking the candidates), and a
    paper deleted from the catalog gives its place on the page to the next one."""
    from paperfeed.search import service

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
    index_pending(engine, settings)
    query = "denoising diffusion probabilistic models"
    first = ids((settings, engine), query)
    assert first[0] == "2006.11239"
    with db.transaction(engine) as conn:
        edit_paper(conn, "2006.11239", hidden=True)
    for read_max in (service.HIDDEN_READ_MAX, 0):
        monkeypatch.setattr(service, "HIDDEN_READ_MAX", read_max)
        for mode in ("hybrid", "keyword", "semantic"):
            assert "2006.11239" not in ids((settings, engine), query, mode=mode)
        assert ids((settings, engine), query) == first[1:]
    with db.transaction(engine) as conn:
        conn.execute(delete(Paper).where(Paper.arxiv_id == first[1]))
    with db.read(engine) as conn:
        got = search(conn, settings, query, limit=1)
    assert [h.arxiv_id for h in got.hits] == [first[2]]
    assert got.total == len(first) - 2


def _keyword_only(settings: Settings) -> Settings:
    return Settings(
        database_url=settings.database_url, data_dir=settings.data_dir, search_semantic=False
    )


def test_bulk_keyword_load_resumes_after_a_crash(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paperfeed.search import indexing, store

    if engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL keeps its keyword column itself")
    settings = _keyword_only(settings)
    monkeypatch.setattr(indexing, "BULK_READ", 2)
    monkeypatch.setattr(indexing, "BULK_COMMIT", 4)
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)  # 9 visible, the last one hidden

    def killed(stage: str, done: int, total: int) -> None:
        if done >= 6:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        index_pending(engine, settings, progress=killed)
    # The first commit (4 papers) and its watermark survived; the next batch was rolled back.
    assert store.embedded(settings).keyword.count() == 4
    store.forget(settings)  # as a new process would
    again = index_pending(engine, settings)
    assert (again.keyword_updated, again.keyword_deleted) == (5, 1)
    assert store.embedded(settings).keyword.count() == 9
    assert index_pending(engine, settings).keyword_updated == 0


def test_bulk_keyword_load_replaces_papers_changed_during_it(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paperfeed.search import indexing, store

    if engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL keeps its keyword column itself")
    settings = _keyword_only(settings)
    monkeypatch.setattr(indexing, "BULK_READ", 2)
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)

    def edit_once(stage: str, done: int, total: int) -> None:
        if done == 2:  # the first batch is written: change one of its papers
            with db.transaction(engine) as conn:
                edit_paper(conn, PAPERS[0]["arxiv_id"], title="Photosynthesis in Chloroplasts")

    first = index_pending(engine, settings, progress=edit_once)
    assert first.keyword_updated == 10  # 9 papers, one of them twice (no rebuild was needed)
    assert store.embedded(settings).keyword.count() == 9
    assert ids((settings, engine), "photosynthesis", mode="keyword") == [PAPERS[0]["arxiv_id"]]
    # A large backlog on an existing index also goes in bulk, replacing old documents.
    monkeypatch.setattr(indexing, "BULK_MIN", 1)
    with db.transaction(engine) as conn:
        edit_paper(conn, "1706.03762", title="Attention Is Not All You Need")
        edit_paper(conn, "2006.11239", hidden=True)
    second = index_pending(engine, settings)
    assert (second.keyword_updated, second.keyword_deleted) == (1, 1)
    assert store.embedded(settings).keyword.count() == 8
    assert ids((settings, engine), "not all you need", mode="keyword")[0] == "1706.03762"
    assert "2006.11239" not in ids((settings, engine), "denoising diffusion", mode="keyword")


def test_vector_index_ivf_matches_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 384))
    vecs = centres[rng.integers(0, 50, 4000)] + rng.normal(scale=0.5, size=(4000, 384))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    ids_ = np.arange(10, 4010)
    write_index(tmp_path / "exact", ids_, vecs, exact_max=10_000)
    write_index(tmp_path / "ivf", ids_, vecs, exact_max=1_000)
    exact, ivf = load_index(tmp_path / "exact"), load_index(tmp_path / "ivf", nprobe=8)
    assert exact is not None
    assert ivf is not None
    assert (exact.ivf, ivf.ivf is not None) == (None, True)
    recall = 0.0
    for q in vecs[:50]:
        truth = {i for i, _ in exact.search(q, 10)}
        recall += len(truth & {i for i, _ in ivf.search(q, 10)}) / 10
    assert recall / 50 >= 0.95


def test_vector_scores_are_the_exact_cosines(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vecs = rng.normal(size=(3000, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids_ = rng.permutation(np.arange(100, 3100))  # row order is not id order
    for name, exact_max in (("exact", 10_000), ("ivf", 1_000)):
        write_index(tmp_path / name, ids_, vecs, exact_max=exact_max)
        index = load_index(tmp_path / name)
        assert index is not None
        q = vecs[7]
        wanted = [int(ids_[0]), int(ids_[2999]), int(ids_[7]), 5, 99_999]  # 5, 99999: unknown
        got = index.scores(q, wanted)
        assert set(got) == set(wanted[:3])
        for pid, row in ((ids_[0], 0), (ids_[2999], 2999), (ids_[7], 7)):
            assert got[int(pid)] == pytest.approx(float(vecs[row] @ q), abs=2e-3)  # f16 rows


def test_sentence_files_round_trip(tmp_path: Path) -> None:
    """A generation's sentence vectors: packed rows in row order, starts per row; the best
    sentence per paper comes back for papers with sentences, on the exact and the IVF index."""
    rng = np.random.default_rng(3)
    n = 1500
    vecs = rng.normal(size=(n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids_ = rng.permutation(np.arange(1, n + 1))
    counts = rng.integers(0, 5, n)  # some papers have none
    sents = rng.normal(size=(int(counts.sum()), 384)).astype(np.float32)
    sents /= np.linalg.norm(sents, axis=1, keepdims=True)
    starts = np.concatenate([[0], np.cumsum(counts)])
    q = sents[0]
    for name, exact_max in (("exact", 10_000), ("ivf", 1_000)):
        raw = tmp_path / f"{name}.tmp"
        raw.write_bytes(pack_sentences(sents))
        write_index(tmp_path / name, ids_, vecs, exact_max=exact_max, sentences=(raw, starts))
        index = load_index(tmp_path / name)
        assert index is not None
        rows = [0, 1, 2, 3, 4, n - 1]
        got = index.sentence_scores(q, [int(ids_[r]) for r in rows] + [n + 7])  # n+7: unknown
        assert set(got) == {int(ids_[r]) for r in rows if counts[r]}
        for r in rows:
            if counts[r]:
                best = float((sents[starts[r] : starts[r + 1]] @ q).max())
                assert got[int(ids_[r])] == pytest.approx(best, abs=0.01)
    raw.write_bytes(pack_sentences(sents[:-1]))
    with pytest.raises(ValueError, match="do not match"):
        write_index(tmp_path / "bad", ids_, vecs, exact_max=10_000, sentences=(raw, starts))


def test_sentences_of_an_abstract() -> None:
    text = (
        "We study  X. Results by Smith et al. show a 3.5-fold rise (p < 0.01). "
        "Methods. [Background] Mice (n = 12) lacked it! Does it hold? yes it does."
    )
    assert sentences(text) == [
        "We study X.",
        "Results by Smith et al. show a 3.5-fold rise (p < 0.01).",  # no break before "show"
        "[Background] Mice (n = 12) lacked it!",  # "Methods." is too short to be a claim
        "Does it hold? yes it does.",  # no capital after "?": one sentence
    ]
    assert sentences(None) == sentences("") == []
    assert len(sentences("One two three. " * 100)) == 32  # MAX_SENTENCES


def test_sentence_vectors_rescore_semantic_hits(catalog) -> None:  # type: ignore[no-untyped-def]
    """Each paper's sentences are embedded and stored; a semantic hit scores the weighted mean
    of its paper cosine and its best sentence cosine (both backends)."""
    from paperfeed.search.fusion import SENTENCE_WEIGHT
    from paperfeed.search.store import handles

    settings, engine = catalog
    emb = get_embedder()
    query = "quadratic complexity of visual tokens"
    q = emb.embed_query(query)
    with db.read(engine) as conn:
        rows = conn.execute(
            select(Paper.id, Paper.arxiv_id, Paper.abstract, Embedding.vector, Embedding.sentences)
            .join(Embedding, Embedding.paper_id == Paper.id)
            .where(Paper.hidden.is_(False))
        ).all()
        index = handles(settings, conn).vectors.get()
        assert index is not None
        best = index.sentence_scores(q, [r.id for r in rows])
        hits = search(conn, settings, query, mode="semantic", limit=5).hits
    expected: dict[int, float] = {}
    for r in rows:
        texts = sentences(r.abstract)
        cosines = sentence_cosines(r.sentences, q)
        assert len(cosines) == len(texts) > 0
        assert np.allclose(cosines, emb.embed(texts) @ q, atol=0.01)  # int8 records
        assert best[r.id] == pytest.approx(float(cosines.max()), abs=1e-5)
        cosine = float(np.frombuffer(r.vector, dtype=np.float32) @ q)
        expected[r.id] = (cosine + SENTENCE_WEIGHT * best[r.id]) / (1 + SENTENCE_WEIGHT)
    assert hits[0].arxiv_id == "2405.15738"
    for h in hits:
        assert h.score == pytest.approx(expected[h.paper_id], abs=2e-3)


def test_long_queries_fuse_with_the_sentence_keyword_weight(catalog) -> None:  # type: ignore[no-untyped-def]
    """Hybrid queries of 5+ words (semantic side rescored by sentences) fuse with
    FusionParams.sentence_keyword_weight, shorter ones with keyword_weight: giving one side
    all the weight reproduces that side's own ranking."""
    from paperfeed.search.fusion import FusionParams

    def top(query: str, **kw: object) -> list[str]:
        return ids(catalog, query, limit=3, **kw)

    long_query = "quadratic complexity of attention over visual tokens"
    short_query = "visual tokens attention"
    keyword_for_long = FusionParams(keyword_weight=0.0, sentence_keyword_weight=1.0)
    semantic_for_long = FusionParams(keyword_weight=1.0, sentence_keyword_weight=0.0)
    assert top(long_query, fusion=keyword_for_long) == top(long_query, mode="keyword")
    assert top(long_query, fusion=semantic_for_long) == top(long_query, mode="semantic")
    assert top(long_query, mode="keyword") != top(long_query, mode="semantic")
    # A short query ignores sentence_keyword_weight: keyword_weight 1.0 is keyword order
    # (semantic-only hits follow, at zero).
    keyword = top(short_query, mode="keyword")
    assert len(keyword) >= 2
    assert top(short_query, fusion=semantic_for_long)[: len(keyword)] == keyword
    assert top(short_query, fusion=keyword_for_long)[: len(keyword)] != keyword


def test_sentence_vectors_added_to_an_existing_index(tmp_path: Path, database_url: str) -> None:
    """A catalog embedded without sentence vectors gets only those on the next index run
    (no paper vector is recomputed), and the rescoring follows the setting."""
    from paperfeed.search.store import handles

    off = Settings(database_url=database_url, data_dir=tmp_path / "d", search_sentences=False)
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[:4])
    assert index_pending(engine, off).embedded == 4
    q = get_embedder().embed_query("residual learning")
    with db.read(engine) as conn:
        assert set(conn.execute(select(Embedding.sentences)).scalars()) == {None}
        assert handles(off, conn).vectors.get().sentence_scores(q, [1, 2, 3, 4]) == {}  # type: ignore[union-attr]
        before = search(conn, off, "residual learning", mode="semantic").hits
    on = off.model_copy(update={"search_sentences": True})
    report = index_pending(engine, on)
    assert (report.embedded, report.sentences, report.unchanged) == (0, 4, 0)
    assert index_pending(engine, on).sentences == 0  # done once
    with db.read(engine) as conn:
        assert None not in set(conn.execute(select(Embedding.sentences)).scalars())
        assert len(handles(on, conn).vectors.get().sentence_scores(q, [1, 2, 3, 4])) == 4  # type: ignore[union-attr]
        after = search(conn, on, "residual learning", mode="semantic").hits
        unchanged = search(conn, off, "residual learning", mode="semantic").hits
    assert [h.score for h in before] == [h.score for h in unchanged]
    assert [h.score for h in before] != [h.score for h in after]
    engine.dispose()


# Four words: the caller scores the semantic hits' BM25; five: the embedding thread does.
@pytest.mark.parametrize(
    "text", ["neural networks for language", "neural networks for language models"]
)
def test_hybrid_scores_every_candidate_on_both_sides(catalog, text: str) -> None:  # type: ignore[no-untyped-def]
    from paperfeed.search.keyword import TantivyBackend
    from paperfeed.search.query import parse_query
    from paperfeed.search.service import SHORT_QUERY_WORDS, QueryVector, hybrid_lists
    from paperfeed.search.store import handles

    settings, engine = catalog
    q = parse_query(text)
    with db.read(engine) as conn:  # the PostgreSQL backends read through it
        # pool 2: both backends put the two papers with the words in their titles first, and
        # the semantic side's top two hold one more paper that has a word (in its abstract).
        keyword, semantic = hybrid_lists(settings, q, pool=2, conn=conn)
        top = handles(settings, conn).keyword.search(q, 2).hits
        # A semantic-only candidate's BM25 is what a full keyword search gives it.
        full = dict(handles(settings, conn).keyword.search(q, 100).hits)
    assert {p for p, _ in keyword} <= {p for p, _ in semantic}  # every keyword hit has a cosine
    assert keyword[:2] == top  # the keyword side's own ranking comes first, unchanged
    assert len(keyword) > 2, "no semantic-only candidate matched a word"
    for pid, score in keyword[2:]:
        assert score == pytest.approx(full[pid])
    # Wherever the BM25 of the semantic hits was computed, the lists are the same.
    with db.read(engine) as conn:
        h = handles(settings, conn)
        default = QueryVector(settings, h, q, 2)
        default.get()
        on_worker = len(q.terms) > SHORT_QUERY_WORDS and isinstance(h.keyword, TantivyBackend)
        assert (default.bm25 is not None) == on_worker
        on_caller = QueryVector(settings, h, q, 2, bm25=False)
        assert hybrid_lists(settings, q, pool=2, conn=conn, h=h, qv=on_caller) == (
            keyword,
            semantic,
        )


def test_cli_index_and_search_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paperfeed.cli import app

    monkeypatch.setenv("PAPERFEED_DATABASE_URL", f"sqlite:///{tmp_path / 'pf.db'}")
    monkeypatch.setenv("PAPERFEED_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = db.make_engine(f"sqlite:///{tmp_path / 'pf.db'}")
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[:5])
    res = runner.invoke(app, ["index", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "5 computed" in res.output
    res = runner.invoke(app, ["search", "residual image recognition", "--limit", "3", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows[0]["arxiv_id"] == "1512.03385"
    assert {"arxiv_id", "title", "score"} <= rows[0].keys()
    assert len(rows) <= 3
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    with db.read(engine) as conn:
        assert conn.execute(select(Embedding.model)).scalars().first() == get_embedder().model_id


@pytest.fixture(scope="module")
def web(catalog):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from paperfeed.app import create_app

    settings, engine = catalog
    with TestClient(create_app(settings, engine)) as client:
        yield client


def test_results_page(web) -> None:  # type: ignore[no-untyped-def]
    r = web.get("/papers", params={"q": "hierarchical visual encoder"})
    assert r.status_code == 200
    html = r.text
    assert "ConvLLaVA" in html
    assert "Chunjiang Ge" in html
    assert "<mark>hierarchical</mark>" in html
    assert 'value="hierarchical visual encoder"' in html
    assert "2403.00003" not in html  # hidden


def test_results_page_paging_and_did_you_mean(web, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from paperfeed.web import search_routes

    monkeypatch.setattr(search_routes, "PAGE_SIZE", 3)
    r = web.get("/papers", params={"q": "models networks learning", "p": 1})
    assert 'rel="next"' in r.text
    r2 = web.get("/papers", params={"q": "models networks learning", "p": 2})
    assert r2.status_code == 200
    assert 'rel="prev"' in r2.text
    r = web.get("/papers", params={"q": "paper 2405 15738"})
    assert 'Did you mean arXiv id <a href="/papers/2405.15738">' in r.text


def test_search_api(web) -> None:  # type: ignore[no-untyped-def]
    r = web.get("/api/v1/search", params={"q": "arXiv:2006.11239v2", "limit": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["results"][0]["arxiv_id"] == "2006.11239"
    assert len(body["results"]) <= 3
    assert {"title", "score", "snippet_html", "authors", "upvotes"} <= body["results"][0].keys()
    assert web.get("/api/v1/search", params={"limit": 0}).status_code == 422
    # The Hugging Face-compatible endpoint ranks with the same search().
    hf = web.get("/api/papers/search", params={"q": "denoising diffusion probabilistic"}).json()
    assert hf[0]["paper"]["id"] == "2006.11239"


def test_similar_api_and_paper_block(web) -> None:  # type: ignore[no-untyped-def]
    r = web.get("/api/papers/2006.11239/similar", params={"limit": 2})
    assert r.status_code == 200
    found = [x["arxiv_id"] for x in r.json()["results"]]
    assert len(found) == 2
    assert "2006.11239" not in found
    assert web.get("/api/papers/9999.99999/similar").status_code == 404
    v1 = web.get("/api/v1/papers/2006.11239/similar", params={"limit": 2}).json()
    assert [x["arxiv_id"] for x in v1["results"]] == found
    page = web.get("/papers/2006.11239").text
    assert "Similar papers" in page
    assert "Score-Based Generative Modeling" in page


@pytest.mark.parametrize(
    "q", ["", '"', "a" * 10_000, "((foo AND", "title:x^2 ~ *", "🎉 东京 мир", "\x00\x1b", "-"]
)
def test_hostile_queries_never_500(web, q: str) -> None:  # type: ignore[no-untyped-def]
    assert web.get("/papers", params={"q": q}).status_code == 200
    assert web.get("/api/v1/search", params={"q": q}).status_code == 200
    assert web.get("/api/papers/search", params={"q": q[:500]}).status_code == 200


def test_index_is_exclusive_and_reports_progress(settings: Settings, engine: Engine) -> None:
    import fcntl

    from paperfeed.search import IndexBusyError
    from paperfeed.search.store import search_dir

    if engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL locks in the database: tests/test_search_pg.py")
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[8:9])
    search_dir(settings).mkdir(parents=True)
    with (search_dir(settings) / "index.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(IndexBusyError):
            index_pending(engine, settings)
    seen: list[tuple[str, int, int]] = []
    index_pending(engine, settings, progress=lambda *a: seen.append(a))
    assert ("embeddings", 1, 1) in seen
    assert ("keyword index", 1, 1) in seen


def test_before_first_index_title_words_still_work(settings: Settings, engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's keyword index is never behind: tests/test_search_pg.py")
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
    with db.read(engine) as conn:
        p = search(conn, settings, "residual learning")
        assert [h.arxiv_id for h in p.hits] == ["1512.03385"]
        assert "not built yet" in p.notices[0]
        assert search(conn, settings, "1706.03762").hits[0].arxiv_id == "1706.03762"
        assert search(conn, settings, "100%_").hits == []
        assert "2403.00003" not in [h.arxiv_id for h in search(conn, settings, "diffusion").hits]


def test_results_are_listing_cards(web) -> None:  # type: ignore[no-untyped-def]
    """Same card as the front page: vote control with count, categories, code, comments."""
    from card_html import cards

    found = cards(web.get("/papers", params={"q": "hierarchical visual encoder"}).text)
    conv = found["2405.15738"]
    assert conv.cats == ["cs.CV", "cs.CL"] and conv.has_code_badge and conv.has_comments_link
    assert (
        conv.count == 0
        and conv.signin_link == "/signin?next=/papers%3Fq%3Dhierarchical%2Bvisual%2Bencoder"
    )
    assert "hierarchical" in [m.lower() for m in conv.marks]


def test_upvote_a_result_without_javascript(web, catalog) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from card_html import cards
    from conftest import sign_in
    from paperfeed import accounts

    settings, engine = catalog
    with db.transaction(engine) as conn:
        made = accounts.sign_up(conn, settings, "searcher", "s@example.org", "pw-searcher-0123")
        accounts.mark_verified(conn, made.user_id)
    with TestClient(web.app) as client:
        assert sign_in(client, "searcher", "pw-searcher-0123").status_code == 303
        url = "/papers?q=denoising+diffusion"
        card = cards(client.get(url).text)["2006.11239"]
        assert card.pressed == "false" and card.fields["next"] == url
        r = client.post(card.action, data=card.fields, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == url
        voted = cards(client.get(url).text)["2006.11239"]
        assert (voted.pressed, voted.count) == ("true", card.count + 1)
        client.post(voted.action, data=voted.fields)  # leave the shared catalog as it was
        assert cards(client.get(url).text)["2006.11239"].count == card.count
