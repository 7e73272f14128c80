"""similar_papers: each paper's nearest neighbours as last computed (models.SimilarPapers)

On PostgreSQL a paper page's "similar papers" is an HNSW query (~14 ms of database CPU at 300k
papers); the list is kept here, shared by every web process, for PAPERFEED_SIMILAR_CACHE_S.

Revision ID: 0009_similar_papers
Revises: 0008_search_lexicon
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_similar_papers"
down_revision: str | Sequence[str] | None = "0008_search_lexicon"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "similar_papers",
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("neighbours", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"],
            ["papers.id"],
            name=op.f("fk_similar_papers_paper_id_papers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("paper_id", name=op.f("pk_similar_papers")),
    )


def downgrade() -> None:
    op.drop_table("similar_papers")
