"""trending: index (featured_date, hotness) (covering: a window is ranked from the index alone)

Revision ID: 0002_trending
Revises: 0001_initial
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_trending"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_papers_featured_hotness",
            ["featured_date", "hotness", "arxiv_id", "hidden"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.drop_index("ix_papers_featured_hotness")
