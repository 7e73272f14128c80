"""pgvector's column in the row, the other vector copies out of it (PostgreSQL)

An embeddings row holds the vector twice (`vec`, pgvector's, and `vector`, the float32 bytes
every backend reads) and its sentence vectors: ~6 KB, where PostgreSQL keeps at most ~2 KB
in the row and moves the largest values out to TOAST. `vec` was the one moved (4 bytes larger
than `vector`), so every HNSW hit and every exact cosine fetched it back from TOAST to
compute its distance (at 300k papers, 100 hits read 1,478 buffers instead of 716, in a one-off
EXPLAIN ANALYZE). Storage MAIN keeps
`vec` in the row; EXTERNAL moves `vector` (read once per paper page) out first.

Rows written before this migration keep their layout until they are written again; `VACUUM
FULL embeddings` rewrites them all at once (README, "Search on PostgreSQL").

Revision ID: 0013_vectors_in_row
Revises: 0012_gin_pending_lists
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_vectors_in_row"
down_revision: str | Sequence[str] | None = "0012_gin_pending_lists"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_vec() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.execute(
            sa.text(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'embeddings' AND column_name = 'vec'"
            )
        ).scalar()
    )


def upgrade() -> None:
    if _has_vec():  # migration 0003 adds it where pgvector is installed
        op.execute("ALTER TABLE embeddings ALTER COLUMN vec SET STORAGE MAIN")
        op.execute("ALTER TABLE embeddings ALTER COLUMN vector SET STORAGE EXTERNAL")


def downgrade() -> None:
    if _has_vec():
        op.execute("ALTER TABLE embeddings ALTER COLUMN vec SET STORAGE EXTERNAL")
        op.execute("ALTER TABLE embeddings ALTER COLUMN vector SET STORAGE EXTENDED")
