"""PostgreSQL search: a small title + authors tsvector (papers.rank_tsv) with its own GIN index

`search_tsv` holds the abstract too, so it is stored out of line (TOAST, ~1.6 KB compressed):
every row PostgreSQL ranks or re-checks against it must be fetched and decompressed (~6-13 µs).
"All words in the title" (weight A) and `author:` (weight B, consecutive words) need that
re-check for every row whose vector has the words anywhere: 35k rows for "attention" in a 300k
catalog, half a second. `rank_tsv` is the title (English, A) and the folded author names
(simple, B) only: ~100 bytes, kept in the row, so those matches and the cheap first ranking
pass of search.pg read no TOAST. `search_tsv` stays for matching words anywhere and for the
final ranking of the few best candidates. A no-op on SQLite.

Revision ID: 0007_search_rank
Revises: 0006_partial_paper_indexes
"""

import unicodedata
from collections.abc import Sequence

from alembic import op

revision: str = "0007_search_rank"
down_revision: str | Sequence[str] | None = "0006_partial_paper_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fold_table() -> tuple[str, str]:
    """Frozen copy of 0005's table: Latin letters with diacritics -> their ASCII base."""
    src, dst = [], []
    for cp in [*range(0xC0, 0x250), *range(0x1E00, 0x1F00)]:
        c = chr(cp)
        d = unicodedata.normalize("NFKD", c)
        base = "".join(x for x in d if not unicodedata.combining(x))
        if d != c and len(base) == 1 and base.isascii() and base.isalpha():
            src.append(c)
            dst.append(base)
    return "".join(src), "".join(dst)


FOLD_FROM, FOLD_TO = _fold_table()
AUTHORS = f"lower(translate(coalesce(authors::jsonb::text, ''), '{FOLD_FROM}', '{FOLD_TO}'))"
# The title and author parts of 0005's search_tsv, exactly (same configurations and weights).
RANK_TSV = f"""
    setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
 || setweight(to_tsvector('simple'::regconfig, {AUTHORS}), 'B')
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"ALTER TABLE papers ADD COLUMN rank_tsv tsvector GENERATED ALWAYS AS ({RANK_TSV}) STORED"
    )
    op.execute("CREATE INDEX ix_papers_rank_tsv ON papers USING gin (rank_tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_papers_rank_tsv")
    op.execute("ALTER TABLE papers DROP COLUMN IF EXISTS rank_tsv")
