"""The PostgreSQL pass really runs on PostgreSQL, with pgvector available (production needs it)."""

import pytest
from sqlalchemy import text

from paperfeed import db

pytestmark = pytest.mark.postgres


def test_suite_runs_on_postgresql_with_pgvector(engine) -> None:
    assert engine.dialect.name == "postgresql"
    with db.transaction(engine) as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        assert conn.execute(text("SELECT '[1,2]'::vector <-> '[1,4]'::vector")).scalar() == 2.0


def test_each_test_gets_a_fresh_database(engine) -> None:
    with db.read(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM papers")).scalar() == 0
        assert db.current_heads(engine)[0] == db.current_heads(engine)[1]


def test_search_columns_follow_the_catalog_with_title_weighted_highest(engine) -> None:
    from paperfeed import papers
    from paperfeed.sources import PaperRecord

    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn,
            [
                PaperRecord(
                    arxiv_id="2401.00001",
                    title="Diffusion models",
                    source="t",
                    abstract="We study images.",
                    authors=["Ada Lovelace"],
                ),
                PaperRecord(
                    arxiv_id="2401.00002",
                    title="Image models",
                    source="t",
                    abstract="A diffusion approach.",
                    authors=["Alan Turing"],
                ),
            ],
        )
        ranked = (
            conn.execute(
                text(
                    "SELECT arxiv_id FROM papers "
                    "WHERE search_tsv @@ plainto_tsquery('english', :q) "
                    "ORDER BY ts_rank('{0.1, 0.4, 0.7, 1.0}', search_tsv, "
                    "plainto_tsquery('english', :q)) DESC"
                ),
                {"q": "diffusion"},
            )
            .scalars()
            .all()
        )
        assert ranked == ["2401.00001", "2401.00002"]
        by_author = (
            conn.execute(
                text(
                    "SELECT arxiv_id FROM papers "
                    "WHERE search_tsv @@ plainto_tsquery('simple', 'turing')"
                )
            )
            .scalars()
            .all()
        )
        assert by_author == ["2401.00002"]


def test_pgvector_column_has_hnsw_index_and_resets_on_reembedding(engine) -> None:
    with db.transaction(engine) as conn:
        index = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_embeddings_vec_hnsw'")
        ).scalar()
        assert "hnsw" in index and "vector_ip_ops" in index
        conn.execute(
            text(
                "INSERT INTO papers (arxiv_id, version, versions, title, abstract, authors, "
                "categories, source_upvotes, upvotes, source_comments, num_comments, hotness, "
                "hidden, extra, source, created_at, modified_at) VALUES ('x', 0, '[]', 't', '', "
                "'[]', '[]', 0, 0, 0, 0, 0, false, '{}', 't', now(), now())"
            )
        )
        pid = conn.execute(text("SELECT id FROM papers")).scalar()
        vec = "[" + ",".join(["0.1"] * 384) + "]"
        conn.execute(
            text(
                "INSERT INTO embeddings (paper_id, model, text_hash, vector, vec, created_at) "
                "VALUES (:p, 'm', 'h', :b, CAST(:v AS vector), now())"
            ),
            {"p": pid, "b": b"\x00" * 1536, "v": vec},
        )
        conn.execute(text("UPDATE embeddings SET text_hash = 'h2'"))  # same vector: kept
        assert conn.execute(text("SELECT vec IS NOT NULL FROM embeddings")).scalar()
        conn.execute(text("UPDATE embeddings SET vector = :b"), {"b": b"\x01" * 1536})
        assert conn.execute(text("SELECT vec IS NULL FROM embeddings")).scalar()


def test_full_text_indexes_keep_short_pending_lists(engine) -> None:
    """Migration 0012: votes' row versions reach keyword search through these lists."""
    with db.read(engine) as conn:
        options = dict(
            conn.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class "
                    "WHERE relname IN ('ix_papers_search_tsv', 'ix_papers_rank_tsv')"
                )
            ).all()
        )
    assert options == {
        "ix_papers_search_tsv": ["gin_pending_list_limit=128"],
        "ix_papers_rank_tsv": ["gin_pending_list_limit=128"],
    }


def test_pgvector_column_stays_in_the_row(engine) -> None:
    """Migration 0013: the HNSW hits' distances are computed from `vec` without a TOAST fetch;
    the float32 copy and the sentence vectors are what leave the row."""
    with db.read(engine) as conn:
        storage = dict(
            conn.execute(
                text(
                    "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = "
                    "CAST('embeddings' AS regclass) AND attname IN ('vec', 'vector', 'sentences')"
                )
            ).all()
        )
    assert storage == {"vec": "m", "vector": "e", "sentences": "x"}


def test_indexed_vectors_are_read_without_toast(engine, settings) -> None:
    """What migration 0013 is for, on rows `paperfeed index` writes: reading every `vec` touches
    only the table's pages, while reading the float32 copy fetches each row's from TOAST."""
    import json

    from paperfeed.search import index_pending
    from search_catalog import PAPERS, add_papers

    with db.transaction(engine) as conn:
        add_papers(conn, PAPERS)
    index_pending(engine, settings)

    def pages_read(column: str) -> int:
        with db.read(engine) as conn:
            conn.execute(text("SET LOCAL enable_indexscan = off"))
            plan = conn.execute(
                text(
                    f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT sum(length({column}::text)) "
                    "FROM embeddings"
                )
            ).scalar_one()
        plan = plan if isinstance(plan, list) else json.loads(plan)
        top = plan[0]["Plan"]
        return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])

    with db.read(engine) as conn:
        rows = conn.execute(text("SELECT count(*) FROM embeddings WHERE vec IS NOT NULL")).scalar()
    assert rows == len(PAPERS)
    assert pages_read("vec") < rows  # a few table pages
    assert pages_read("vector") >= 2 * rows  # + a TOAST index and data page per row
