"""PostgreSQL search: weighted tsvector (GIN) on papers, pgvector column + HNSW on embeddings

PostgreSQL only (a no-op on SQLite, whose search lives in the data dir). The keyword side is a
stored generated column, so it can never lag behind the catalog; the vector side is filled by
`paperfeed index` (see paperfeed.search.pg) and reset by a trigger when an embedding changes.
Without the pgvector extension on the server the vector part is skipped and semantic search
keeps the embedded index (`paperfeed doctor` says so).

Revision ID: 0003_postgres_search
Revises: 0001_initial
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_postgres_search"
down_revision: str | Sequence[str] | None = "0002_trending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIM = 384  # all-MiniLM-L6-v2 (paperfeed.search.embedder.DIM); a new model needs a new migration
# HNSW build parameters (pgvector defaults): m links per node, ef_construction candidate list.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64

# Title > authors > abstract: ts_rank weights {D, C, B, A} are given at query time.
TSV = """
    setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
 || setweight(to_tsvector('simple'::regconfig, coalesce(authors::text, '')), 'B')
 || setweight(to_tsvector('english'::regconfig, coalesce(abstract, '')), 'C')
"""


# Lowercase, runs of anything but letters/digits/_ to one space, trimmed (= title_key for ASCII).
TITLE_KEY = "btrim(regexp_replace(lower(title), '[^[:alnum:]_]+', ' ', 'g'))"


def _has_pgvector(bind: sa.Connection) -> bool:
    return bool(
        bind.execute(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(
        f"ALTER TABLE papers ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS ({TSV}) STORED"
    )
    op.execute("CREATE INDEX ix_papers_search_tsv ON papers USING gin (search_tsv)")
    # Exact-title lookups (a pasted title finds its paper first): search.query.title_key in SQL.
    op.execute(f"CREATE INDEX ix_papers_title_key ON papers (({TITLE_KEY}))")
    if not _has_pgvector(bind):
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(f"ALTER TABLE embeddings ADD COLUMN vec vector({DIM})")
    op.execute(
        "CREATE INDEX ix_embeddings_vec_hnsw ON embeddings USING hnsw (vec vector_ip_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    )
    # A re-embedded paper (new bytes in `vector`) must not keep its old pgvector copy.
    op.execute(
        """
        CREATE FUNCTION paperfeed_embeddings_reset_vec() RETURNS trigger AS $$
        BEGIN
            IF NEW.vector IS DISTINCT FROM OLD.vector THEN
                NEW.vec := NULL;
            END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER embeddings_reset_vec BEFORE UPDATE ON embeddings "
        "FOR EACH ROW EXECUTE FUNCTION paperfeed_embeddings_reset_vec()"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS embeddings_reset_vec ON embeddings")
    op.execute("DROP FUNCTION IF EXISTS paperfeed_embeddings_reset_vec()")
    op.execute("DROP INDEX IF EXISTS ix_embeddings_vec_hnsw")
    op.execute("ALTER TABLE embeddings DROP COLUMN IF EXISTS vec")
    op.execute("DROP INDEX IF EXISTS ix_papers_title_key")
    op.execute("DROP INDEX IF EXISTS ix_papers_search_tsv")
    op.execute("ALTER TABLE papers DROP COLUMN IF EXISTS search_tsv")
