"""PostgreSQL search: author names and title keys folded like search.query.fold (accents off)

0003 indexed `authors::text`, which for a JSON column is the text as SQLAlchemy wrote it, with
non-ASCII letters as \\u escapes ('José' became the tokens 'jos' and 'u00e9'). Now the names are
read through jsonb (real characters) and accents are folded with translate() (immutable, so
allowed in a generated column and an index; PostgreSQL's unaccent is neither, and is not
installed everywhere). `author:menard` then finds 'José Ménard' as the embedded index does. The
exact-title index gets the same folding. A no-op on SQLite.

Revision ID: 0005_search_fold
Revises: 0004_catalog_write_speed
"""

import unicodedata
from collections.abc import Sequence

from alembic import op

revision: str = "0005_search_fold"
down_revision: str | Sequence[str] | None = "0004_catalog_write_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fold_table() -> tuple[str, str]:
    """Latin letters with diacritics -> their ASCII base (what NFKD + dropping marks gives)."""
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


def _fold(expr: str) -> str:
    return f"lower(translate({expr}, '{FOLD_FROM}', '{FOLD_TO}'))"


TSV = f"""
    setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
 || setweight(to_tsvector('simple'::regconfig, {_fold("coalesce(authors::jsonb::text, '')")}), 'B')
 || setweight(to_tsvector('english'::regconfig, coalesce(abstract, '')), 'C')
"""
TITLE_KEY = f"btrim(regexp_replace({_fold('title')}, '[^[:alnum:]_]+', ' ', 'g'))"

OLD_TSV = """
    setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
 || setweight(to_tsvector('simple'::regconfig, coalesce(authors::text, '')), 'B')
 || setweight(to_tsvector('english'::regconfig, coalesce(abstract, '')), 'C')
"""
OLD_TITLE_KEY = "btrim(regexp_replace(lower(title), '[^[:alnum:]_]+', ' ', 'g'))"


def _rebuild(tsv: str, title_key: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_papers_title_key")
    op.execute("DROP INDEX IF EXISTS ix_papers_search_tsv")
    op.execute("ALTER TABLE papers DROP COLUMN IF EXISTS search_tsv")
    op.execute(
        f"ALTER TABLE papers ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS ({tsv}) STORED"
    )
    op.execute("CREATE INDEX ix_papers_search_tsv ON papers USING gin (search_tsv)")
    op.execute(f"CREATE INDEX ix_papers_title_key ON papers (({title_key}))")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _rebuild(TSV, TITLE_KEY)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _rebuild(OLD_TSV, OLD_TITLE_KEY)
