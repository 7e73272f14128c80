"""Short pending lists for the full-text GIN indexes (PostgreSQL)

Every new version of a papers row (an upvote's, a comment count's, an ingest's) adds all of
its search vectors' words to the pending lists of ix_papers_search_tsv and ix_papers_rank_tsv
(GIN's fastupdate), and every keyword search reads those lists from start to end. At the
default 4 MB limit, 3,600 votes at 300k papers (six minutes at the load test's rate) made a
keyword search 11.0 -> 13.1 ms, and the vote that found a list full took ~200 ms to merge it
into the index. At 128 kB searches stayed at ~10 ms and the slowest vote took ~50 ms
(bench/vote_churn.py measures both sides). A per-index storage parameter: no rewrite.

Revision ID: 0012_gin_pending_lists
Revises: 0011_hidden_papers_index
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_gin_pending_lists"
down_revision: str | Sequence[str] | None = "0011_hidden_papers_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = ("ix_papers_search_tsv", "ix_papers_rank_tsv")
PENDING_LIST_KB = 128


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"ALTER INDEX IF EXISTS {name} SET (gin_pending_list_limit = {PENDING_LIST_KB})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"ALTER INDEX IF EXISTS {name} RESET (gin_pending_list_limit)")
