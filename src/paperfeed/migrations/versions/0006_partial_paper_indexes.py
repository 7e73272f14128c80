"""Partial indexes for columns that most papers leave empty

Only papers on the front page have a `featured_date`, and only papers submitted here have a
`submitted_by_id`; a bulk import (the arXiv snapshot) has neither. Indexing those columns only
`WHERE ... IS NOT NULL` keeps the indexes small and removes three of the eight index inserts
a snapshot paper costs. Every query that uses them already implies the condition (a range or
equality on the column, or an explicit IS NOT NULL), which SQLite and PostgreSQL both need to
pick a partial index.

Revision ID: 0006_partial_paper_indexes
Revises: 0005_search_fold
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_partial_paper_indexes"
down_revision: str | Sequence[str] | None = "0005_search_fold"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_papers_featured_upvotes", ["featured_date", "upvotes"], "featured_date"),
    (
        "ix_papers_featured_hotness",
        ["featured_date", "hotness", "arxiv_id", "hidden"],
        "featured_date",
    ),
    ("ix_papers_submitted_by_id", ["submitted_by_id"], "submitted_by_id"),
)


def _recreate(partial: bool) -> None:
    for name, cols, col in INDEXES:
        op.drop_index(name, table_name="papers")
        where = sa.text(f"{col} IS NOT NULL") if partial else None
        op.create_index(name, "papers", cols, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    _recreate(partial=True)


def downgrade() -> None:
    _recreate(partial=False)
