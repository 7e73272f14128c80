"""PostgreSQL search: document frequencies of the search vectors' words (search_lexicon)

PostgreSQL's ts_rank has no inverse document frequency: a claim's common words ("cells",
"increase") counted as much as its rare ones, and hybrid search ranked below semantic search
alone on SciFact. search.pg weights each query word by its IDF, read from this table: one row
per lexeme of papers.search_tsv with the number of papers that have it (ts_stat), refreshed by
`paperfeed index`. A no-op on SQLite.

Revision ID: 0008_search_lexicon
Revises: 0007_search_rank
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_search_lexicon"
down_revision: str | Sequence[str] | None = "0007_search_rank"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE TABLE search_lexicon (word text PRIMARY KEY, ndoc integer NOT NULL)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE IF EXISTS search_lexicon")
