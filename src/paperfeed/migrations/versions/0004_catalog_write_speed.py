"""Cheaper catalog writes: drop two unused paper indexes; author/category rows WITHOUT ROWID

An ingest writes one papers row plus about five author/category rows per paper, and every
index is one more B-tree insert per row. `ix_papers_featured_date` duplicates the leading
column of `ix_papers_featured_upvotes`, and nothing filters or sorts on `primary_category`.
On SQLite the two side tables become WITHOUT ROWID tables clustered on their primary key,
which removes the separate rowid B-tree (one insert per row instead of two); PostgreSQL
tables are heaps either way, so there only the indexes change.

Revision ID: 0004_catalog_write_speed
Revises: 0003_postgres_search
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004_catalog_write_speed"
down_revision: str | Sequence[str] | None = "0003_postgres_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _authors(name: str, **kw: Any) -> None:
    op.create_table(
        name,
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("name_key", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name="fk_paper_authors_paper_id_papers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("paper_id", "position", name="pk_paper_authors"),
        **kw,
    )


def _categories(name: str, **kw: Any) -> None:
    op.create_table(
        name,
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"],
            ["papers.id"],
            name="fk_paper_categories_paper_id_papers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("paper_id", "category", name="pk_paper_categories"),
        **kw,
    )


def _rebuild_side_tables(with_rowid: bool) -> None:
    """SQLite cannot ALTER a table's rowid-ness: copy into a new table and swap it in."""
    for table, make, cols, indexed in (
        ("paper_authors", _authors, "paper_id, position, name, name_key", "name_key"),
        ("paper_categories", _categories, "paper_id, category", "category"),
    ):
        make(f"{table}_new", sqlite_with_rowid=with_rowid)
        op.execute(f"INSERT INTO {table}_new ({cols}) SELECT {cols} FROM {table}")
        op.drop_index(f"ix_{table}_{indexed}", table_name=table)
        op.drop_table(table)
        op.rename_table(f"{table}_new", table)
        op.create_index(f"ix_{table}_{indexed}", table, [indexed])


def upgrade() -> None:
    op.drop_index("ix_papers_featured_date", table_name="papers")
    op.drop_index("ix_papers_primary_category", table_name="papers")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_side_tables(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_side_tables(with_rowid=True)
    op.create_index("ix_papers_primary_category", "papers", ["primary_category"])
    op.create_index("ix_papers_featured_date", "papers", ["featured_date"])
