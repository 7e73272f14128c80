"""embeddings.sentences: a vector per abstract sentence, for rescoring search candidates

Search scores a semantic candidate by its paper vector and its best-matching sentence
(search/fusion.py `with_sentences`); the sentence vectors are packed int8 records
(embedder.SENTENCE_RECORD), NULL until
`paperfeed index` computed them (an empty value: the paper has no sentence to embed).

Revision ID: 0010_sentence_vectors
Revises: 0009_similar_papers
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_sentence_vectors"
down_revision: str | Sequence[str] | None = "0009_similar_papers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (no table copy: embeddings may hold millions of rows).
    op.add_column("embeddings", sa.Column("sentences", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("embeddings", "sentences")
