"""Search on PostgreSQL's own indexes (tsvector + pgvector): no files, shared by every process.

The behaviour both backends share is tested in tests/test_search.py (which runs in both passes);
here is what differs on PostgreSQL.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from sqlalchemy import Engine, event, text, update

from paperfeed import db
from paperfeed.config import Settings
from paperfeed.models import Paper
from paperfeed.search import IndexBusyError, index_pending, search, similar, store
from paperfeed.search.query import fold_table, parse_query
from search_catalog import PAPERS, add_papers, edit_paper, paper_id

PAPERFEED = str(Path(sys.executable).parent / "paperfeed")
postgres = pytest.mark.postgres


def hits(engine: Engine, settings: Settings, query: str, **kw: object) -> list[str]:
    with db.read(engine) as conn:
        return [h.arxiv_id for h in search(conn, settings, query, **kw).hits]  # type: ignore[arg-type]


def test_backend_setting() -> None:
    sqlite = Settings(database_url="sqlite://")
    pg = "postgresql+psycopg://u@h/db"
    assert store.backend(sqlite) == store.EMBEDDED
    assert store.backend(Settings(database_url=pg)) == store.POSTGRES
    assert store.backend(Settings(database_url=pg, search_backend="embedded")) == store.EMBEDDED
    with pytest.raises(pydantic.ValidationError, match="needs a postgresql"):
        Settings(database_url="sqlite://", search_backend="postgres")
    with pytest.raises(pydantic.ValidationError):
        Settings(search_backend="elastic")  # type: ignore[arg-type]


def test_fold_table_matches_the_migrations_frozen_copy() -> None:
    versions = Path(__file__).resolve().parents[1] / "src/paperfeed/migrations/versions"
    sys.path.insert(0, str(versions))
    try:
        migration = importlib.import_module("0005_search_fold")
    finally:
        sys.path.remove(str(versions))
    assert fold_table() == (migration.FOLD_FROM, migration.FOLD_TO)
    from paperfeed.search import pg

    assert pg.TITLE_KEY_SQL == migration.TITLE_KEY  # the expression ix_papers_title_key indexes


@postgres
def test_index_writes_no_files_and_keeps_pgvector_in_step(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paperfeed.search import pg

    monkeypatch.setattr(pg, "BULK_REBUILD_MIN", 3)  # the first sync is a "backfill": rebuild
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[:3])
    seen: list[tuple[str, int, int]] = []
    first = index_pending(engine, settings, progress=lambda *a: seen.append(a))
    assert (first.backend, first.embedded, first.vectors_synced, first.vectors) == (
        "postgres",
        3,
        3,
        3,
    )
    assert ("pgvector", 3, 3) in seen
    with db.read(engine) as conn:
        index = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_embeddings_vec_hnsw'")
        ).scalar()
        assert "hnsw" in index and "vector_ip_ops" in index  # rebuilt after the backfill
    assert first.keyword_updated == 0  # the tsvector column is PostgreSQL's to maintain
    assert not settings.data_dir.exists()  # no tantivy, no vector files, no lock file
    again = index_pending(engine, settings)
    assert (again.embedded, again.vectors_synced, again.vectors) == (0, 0, 3)
    with db.transaction(engine) as conn:
        edit_paper(conn, "1706.03762", title="Photosynthesis Is All You Need")
        add_papers(conn, [PAPERS[8]])
    # Keyword search sees the change at once: the column is generated in the same transaction.
    assert hits(engine, settings, "photosynthesis", mode="keyword")[0] == "1706.03762"
    third = index_pending(engine, settings)
    assert (third.embedded, third.vectors_synced, third.vectors) == (2, 2, 4)
    with db.read(engine) as conn:
        stale = conn.execute(text("SELECT count(*) FROM embeddings WHERE vec IS NULL"))
        assert stale.scalar_one() == 0
    assert "2402.00002" in hits(engine, settings, "crops short of water", mode="semantic")[:2]
    # Hiding takes effect without indexing, on both sides.
    with db.transaction(engine) as conn:
        conn.execute(update(Paper).where(Paper.arxiv_id == "2006.11239").values(hidden=True))
    assert hits(engine, settings, "denoising", mode="keyword") == []
    assert "2006.11239" not in hits(engine, settings, "denoising diffusion", mode="semantic")
    assert not settings.data_dir.exists()


@postgres
def test_keyword_search_works_before_the_first_index(settings: Settings, engine: Engine) -> None:
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
    with db.read(engine) as conn:
        page = search(conn, settings, "residual learning")
        assert page.hits[0].arxiv_id == "1512.03385"
        assert page.notices == []  # no "index not built" fallback
        ddpm = paper_id(conn, "2006.11239")
        assert similar(conn, settings, ddpm) == []  # no vectors yet: nothing, not an error
    assert hits(engine, settings, "author:vaswani") == ["1706.03762"]


@postgres
def test_one_indexer_at_a_time_across_machines(settings: Settings, engine: Engine) -> None:
    from paperfeed.search import pg

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[8:9])
    other = db.make_engine(settings.database_url)  # another machine's connection pool
    try:
        with pg.exclusive(other), pytest.raises(IndexBusyError):
            index_pending(engine, settings)
    finally:
        other.dispose()
    assert index_pending(engine, settings).embedded == 1  # the lock went with its holder


@postgres
def test_exact_title_lookup_uses_its_index(settings: Settings, engine: Engine) -> None:
    from paperfeed.search import pg

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = conn.execute(
            text(f"EXPLAIN SELECT id FROM papers WHERE {pg.TITLE_KEY_SQL} = 'x'")
        ).scalars()
        assert "ix_papers_title_key" in " ".join(plan)
        # Folded like search.query.title_key: accents off, punctuation to spaces.
        edit_paper(conn, "2402.00002", title="Photosynthèse: efficacité des cultures")
    assert hits(engine, settings, "photosynthese efficacite des cultures")[0] == "2402.00002"


@postgres
def test_forcing_the_embedded_backend_on_postgresql(settings: Settings, engine: Engine) -> None:
    embedded = settings.model_copy(update={"search_backend": "embedded", "search_semantic": False})
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[:3])
    report = index_pending(engine, embedded)
    assert (report.backend, report.keyword_updated) == ("embedded", 3)
    assert (settings.data_dir / "search" / "keyword").is_dir()
    assert hits(engine, embedded, "diffusion", mode="keyword")[0] == "2006.11239"


@postgres
def test_another_process_sees_new_papers_without_reload(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """A web process with its own (empty) data dir, as on another machine, serves search."""
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS[:3])
    index_pending(engine, settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PAPERFEED_", "PROMETHEUS_"))},
        "PAPERFEED_DATABASE_URL": settings.database_url,
        "PAPERFEED_DATA_DIR": str(tmp_path / "elsewhere"),
        "PAPERFEED_SECRET_KEY": "s" * 40,
    }
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [PAPERFEED, "serve", "--workers", "1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/api/v1/search"
    try:
        deadline = time.monotonic() + 120
        while "Application startup complete" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)

        def served(q: str, mode: str = "hybrid") -> list[str]:
            r = httpx.get(base, params={"q": q, "mode": mode}, timeout=60)
            assert r.status_code == 200, r.text
            return [x["arxiv_id"] for x in r.json()["results"]]

        assert served("diffusion")[0] == "2006.11239"
        assert "2402.00002" not in served("drought plants")
        with db.transaction(engine) as conn:
            add_papers(conn, [PAPERS[8]])
        assert served("drought plants", "keyword") == ["2402.00002"]  # before any index run
        index_pending(engine, settings)
        assert served("crops short of water", "semantic")[0] == "2402.00002"
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/papers/2006.11239/similar", params={"limit": 2}
        )
        assert r.status_code == 200
        assert len(r.json()["results"]) == 2
        assert not (tmp_path / "elsewhere" / "search").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@postgres
def test_hnsw_candidate_list_follows_the_setting(settings: Settings, engine: Engine) -> None:
    import numpy as np

    custom = settings.model_copy(update={"search_hnsw_ef_search": 123})
    query = np.ones(384, dtype=np.float32) / np.sqrt(384)
    with db.read(engine) as conn:
        index = store.handles(custom, conn).vectors.get()
        assert index is not None
        assert index.search(query, 10) == []  # nothing synced yet
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "123"
        index.search(query, 500)  # a pool larger than the setting raises it
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "500"
    # The web app's engine opens every connection with the setting (Settings.database_session),
    # so a query needs no SET LOCAL of its own; a larger pool still raises it.
    served = db.make_engine(settings.database_url, custom.database_session)
    statements: list[str] = []
    event.listen(served, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        for _ in range(2):  # the second transaction reuses the pooled connection
            with db.read(served) as conn:
                index = store.handles(custom, conn).vectors.get()
                assert index is not None
                index.search(query, 10)
                assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "123"
        assert not [s for s in statements if "SET LOCAL" in s]
        with db.read(served) as conn:
            store.handles(custom, conn).vectors.get().search(query, 500)  # type: ignore[union-attr]
            assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "500"
        with db.read(served) as conn:  # SET LOCAL: back to the connection's own value
            assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "123"
    finally:
        served.dispose()


def test_a_bad_search_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from paperfeed.cli import app

    monkeypatch.setenv("PAPERFEED_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("PAPERFEED_SEARCH_BACKEND", "postgres")
    res = CliRunner().invoke(app, ["doctor"])
    assert res.exit_code == 2
    assert "PAPERFEED_SEARCH_BACKEND=postgres needs a postgresql://" in res.output
    assert "Traceback" not in res.output


@postgres
def test_title_and_author_matches_use_the_small_vector(settings: Settings, engine: Engine) -> None:
    from paperfeed.search import pg

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = conn.execute(
            text("EXPLAIN SELECT id FROM papers p WHERE p.rank_tsv @@ 'x:A'::tsquery")
        ).scalars()
        assert "ix_papers_rank_tsv" in " ".join(plan)  # migration 0007

    def typo_variants(query: str) -> dict[str, str]:
        with db.read(engine) as conn:
            ranking = pg.PgKeywordBackend(conn)._ranking(parse_query(query), pg._SeqScan(conn))
            return {k: v for k, v in ranking.params.items() if k.startswith("fz")}

    # A typo gets only the one-edit variants some paper has; a name whose English stem
    # differs ('kaiming' -> 'kaim') is known as a name and gets none. The same before the
    # first `paperfeed index` (probes of the GIN index) and after it (search_lexicon).
    assert typo_variants("difusion Kaiming residual") == {"fz0": "diffusion"}
    assert pg.refresh_lexicon(engine)
    assert typo_variants("difusion Kaiming residual") == {"fz0": "diffusion"}
    assert hits(engine, settings, "Kaiming", mode="keyword") == ["1512.03385"]
    assert hits(engine, settings, "author:kaiming", mode="keyword") == ["1512.03385"]


@postgres
def test_rare_words_outweigh_common_ones(settings: Settings, engine: Engine) -> None:
    """ts_rank has no IDF; search.pg weights each word by it (search_lexicon, migration 0008).
    Here 'networks' is in three papers and 'chlorophyll' in one: a paper with the rare word
    in its abstract outranks those with only the common word, even in their titles."""
    from paperfeed.search import pg

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
    for counted in (False, True):  # counted live, then from the refreshed search_lexicon
        if counted:
            assert pg.refresh_lexicon(engine) == len(lexicon_words(engine)) > 0
        ranked = hits(engine, settings, "networks chlorophyll", mode="keyword")
        assert ranked[0] == "2402.00002"
        assert set(ranked[1:]) == {"1706.03762", "1512.03385", "2401.00001"}
        # Every word of the title beats the same words elsewhere.
        assert hits(engine, settings, "graph neural networks", mode="keyword")[0] == "2401.00001"
    ndoc = dict(lexicon_words(engine))
    assert ndoc["network"] == 3 and ndoc["chlorophyl"] == 1  # English stems
    # Current: nothing to recount. A new paper changes the catalog: recounted, in one go.
    assert pg.refresh_lexicon(engine) is None
    with db.transaction(engine) as conn:
        assert pg.lexicon_status(conn) == (len(ndoc), True)
        add_papers(conn, [{**PAPERS[1], "arxiv_id": "1706.99999", "title": "More networks"}])
    with db.read(engine) as conn:
        assert pg.lexicon_status(conn) == (len(ndoc), False)  # doctor warns
    assert pg.refresh_lexicon(engine)
    assert dict(lexicon_words(engine))["network"] == 4
    # Hidden papers are not counted (the paper hidden in PAPERS has 'secret' in its title).
    assert "secret" not in dict(lexicon_words(engine))


def lexicon_words(engine: Engine) -> list[tuple[str, int]]:
    with db.read(engine) as conn:
        rows = conn.execute(text("SELECT word, ndoc FROM search_lexicon")).all()
        return [(str(w), int(n)) for w, n in rows]


@postgres
def test_similar_papers_are_kept_for_every_process(settings: Settings, engine: Engine) -> None:
    """A paper page's similar papers on pgvector: computed once, then read from similar_papers
    (migration 0009) by any process, until the embedding changes or the entry ages out."""
    from paperfeed.search import pg

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
    # `paperfeed index` computes every visible paper's list (9: one of PAPERS is hidden).
    assert index_pending(engine, settings).similar_stored == 9
    assert index_pending(engine, settings).similar_stored == 0  # all current: nothing to do

    def similar_ids(s: Settings = settings) -> list[str]:
        with db.read(engine) as conn:
            return [h.arxiv_id for h in similar(conn, s, paper_id(conn, "2006.11239"), 3)]

    def kept() -> dict[str, Any] | None:
        with db.read(engine) as conn:
            return conn.execute(
                text(
                    "SELECT s.neighbours FROM similar_papers s JOIN papers p ON p.id = s.paper_id "
                    "WHERE p.arxiv_id = '2006.11239'"
                )
            ).scalar()

    stored = kept()
    # SIMILAR_KEPT neighbours asked for; the catalog has 9 others (the hidden one included:
    # hidden papers drop out when a list is read) and a small catalog's short list is
    # complete: it is served, not recomputed.
    assert stored and stored["asked"] == pg.SIMILAR_KEPT and len(stored["found"]) == 9
    first = similar_ids()
    assert len(first) == 3 and "2006.11239" not in first
    with db.read(engine) as conn:  # the stored list's best visible papers, in its order
        visible = conn.execute(text("SELECT id, arxiv_id FROM papers WHERE NOT hidden"))
        by_id = {int(i): a for i, a in visible}
    assert first == [by_id[int(pid)] for pid, _ in stored["found"] if int(pid) in by_id][:3]
    assert kept() == stored  # read, not rewritten
    reversed_list = json.dumps({"asked": 13, "found": stored["found"][::-1]})
    # Served from the table: reversing the stored order reverses the page's.
    with db.transaction(engine) as conn:
        conn.execute(
            text("UPDATE similar_papers SET neighbours = CAST(:n AS json)"),
            {"n": reversed_list},
        )
    assert similar_ids() != first
    # Hiding a neighbour takes effect at once, without recomputing.
    with db.transaction(engine) as conn:
        conn.execute(update(Paper).where(Paper.arxiv_id == first[0]).values(hidden=True))
    assert first[0] not in similar_ids()
    with db.transaction(engine) as conn:
        conn.execute(update(Paper).where(Paper.arxiv_id == first[0]).values(hidden=False))
    # A new embedding (the text changed) recomputes, as does an entry older than the setting.
    with db.transaction(engine) as conn:
        conn.execute(text("UPDATE embeddings SET text_hash = 'changed'"))
    assert similar_ids() == first
    with db.transaction(engine) as conn:
        conn.execute(
            text("UPDATE similar_papers SET neighbours = CAST(:n AS json)"),
            {"n": reversed_list},
        )
        conn.execute(
            text("UPDATE similar_papers SET computed_at = computed_at - interval '2 days'")
        )
    assert similar_ids() == first
    # Turned off: nothing is read or written.
    with db.transaction(engine) as conn:
        conn.execute(text("DELETE FROM similar_papers"))
    assert similar_ids(settings.model_copy(update={"similar_cache_s": 0})) == first
    assert kept() is None
    # The HNSW candidate list of similar papers is its own setting (search's is larger).
    own = settings.model_copy(update={"similar_cache_s": 0, "similar_hnsw_ef_search": 77})
    with db.read(engine) as conn:
        assert similar(conn, own, paper_id(conn, "2006.11239"), 3)
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "77"


@postgres
def test_scores_read_the_big_vector_only_when_they_must(settings: Settings, engine: Engine) -> None:
    """search.pg scores a candidate from its small in-row rank_tsv (title + authors), and reads
    search_tsv (TOAST) only for a word that rank_tsv lacks and the candidate source does not
    guarantee. Every score must equal the definition over the whole search_tsv: each word's
    IDF when the paper has it, TITLE_BONUS times that again when its title has it."""
    from paperfeed.search import pg

    extra = [
        {  # "GPT-4" is one lexeme ('gpt-4') and two parts: the title has only the parts
            **PAPERS[1],
            "arxiv_id": "2303.08774",
            "title": "GPT 4 Technical Report",
            "abstract": "We report the development of GPT-4, a large multimodal model.",
            "authors": ["Open Report"],
        },
        {  # a query word among the authors only, and one in the abstract only
            **PAPERS[1],
            "arxiv_id": "2404.00004",
            "title": "Residual diffusion models",
            "abstract": "Deep networks with attention learn molecular graphs.",
            "authors": ["Graph Hinton"],
        },
    ]
    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS + extra)
    queries = [
        "networks chlorophyll",
        "GPT-4 report",
        "graph neural networks",
        "residual diffusion attention",
        "deep residual learning image",
        "diffusion",
        'networks "neural networks"',
        "residual -diffusion",
        "molecular cat:cs.LG",
    ]
    for counted in (False, True):
        if counted:
            assert pg.refresh_lexicon(engine)
        for query in queries:
            q = parse_query(query)
            with db.read(engine) as conn:
                backend = pg.PgKeywordBackend(conn)
                got = backend.search(q, 50).hits
                ranking = backend._ranking(q, pg._SeqScan(conn))
                ids = [int(i) for i in conn.execute(text("SELECT id FROM papers")).scalars()]
                rescored = backend.scores(q, ids)
                params: dict[str, Any] = dict(ranking.params)
                cond = " AND ".join(pg._constraints(q, params))
                score = " + ".join(
                    f"CASE WHEN p.search_tsv @@ {w.tsq} THEN CASE WHEN "
                    f"ts_filter(p.search_tsv, '{{a}}') @@ {w.tsq} THEN {w.idf * 1.5} "
                    f"ELSE {w.idf} END ELSE 0 END"
                    for w in ranking.words
                )
                rows = conn.execute(
                    text(
                        f"SELECT * FROM (SELECT p.id, {score} AS s FROM papers p WHERE {cond}) x "
                        "WHERE s > 0 ORDER BY s DESC, id DESC"
                    ),
                    params,
                ).all()
            expected = [(int(i), float(s)) for i, s in rows]
            assert expected, query
            assert [i for i, _ in got] == [i for i, _ in expected], query
            assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)
            assert rescored == pytest.approx(dict(expected), abs=1e-5), query


@postgres
def test_keyword_search_gives_the_planner_back_its_table_scans(
    settings: Settings, engine: Engine
) -> None:
    """The keyword search turns table scans off for its GIN matches (search.pg._SeqScan), in
    passing with its first statement, and puts the setting back before it returns: whether it
    ranked, found only stop words, or corrected a typo."""
    from paperfeed.search import pg

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
    for query in ["graph networks", "the of and", "difusion models", "zzzzqqq"]:
        with db.read(engine) as conn:
            statements: list[str] = []
            event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
            pg.PgKeywordBackend(conn).search(parse_query(query), 100)
            assert conn.execute(text("SHOW enable_seqscan")).scalar() == "on", query
            offs = [s for s in statements if "set_config('enable_seqscan', 'off'" in s]
            assert len(offs) <= 1 + ("difusion" in query), query
    with db.read(engine) as conn:
        statements = []
        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        assert pg.PgKeywordBackend(conn).search(parse_query("graph networks"), 100).hits
        # Off with the words' statistics, not a statement of its own; one more to put it back.
        assert "set_config('enable_seqscan', 'off'" in statements[0]
        assert sum("enable_seqscan" in s for s in statements) == 2
