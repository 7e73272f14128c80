"""A partial index of hidden papers

Search used to ask the database which of its ~200 candidates are visible: ~200 primary-key
lookups spread over the whole papers table, ~1 ms per query at 1M papers (more when those
pages are not cached). Moderation hides few papers, so search now reads the hidden ones from
this index (empty on most instances) and drops them from its candidates in memory.

Revision ID: 0011_hidden_papers_index
Revises: 0010_sentence_vectors
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_hidden_papers_index"
down_revision: str | Sequence[str] | None = "0010_sentence_vectors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    where = sa.text("hidden")
    op.create_index(
        "ix_papers_hidden", "papers", ["id"], sqlite_where=where, postgresql_where=where
    )


def downgrade() -> None:
    op.drop_index("ix_papers_hidden", table_name="papers")
