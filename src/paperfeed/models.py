"""SQLAlchemy 2 models: the whole schema of paperfeed in one place (migrations are made from it).

Portable across SQLite and PostgreSQL: JSON columns, no engine-specific types. Engine-specific
indexes (FTS, pgvector) are created by migrations for the engine in use.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names so migrations behave the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Paper(Base):
    """One arXiv paper, keyed by its canonical id (no version suffix)."""

    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=0)  # latest known version (0 = unknown)
    versions: Mapped[list[Any]] = mapped_column(
        JSON, default=list
    )  # [{"version": 1, "created": iso}]
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[Any]] = mapped_column(JSON, default=list)  # ordered display names
    categories: Mapped[list[Any]] = mapped_column(JSON, default=list)  # primary first
    primary_category: Mapped[str | None] = mapped_column(String(32))
    published: Mapped[dt.date | None] = mapped_column(Date, index=True)
    updated: Mapped[dt.date | None] = mapped_column(Date)
    comments: Mapped[str | None] = mapped_column(Text)
    journal_ref: Mapped[str | None] = mapped_column(Text)
    doi: Mapped[str | None] = mapped_column(String(255))
    license: Mapped[str | None] = mapped_column(String(255))
    code_url: Mapped[str | None] = mapped_column(String(500))
    code_stars: Mapped[int | None] = mapped_column(Integer)
    project_page: Mapped[str | None] = mapped_column(String(500))
    featured_date: Mapped[dt.date | None] = mapped_column(Date)  # ix_papers_featured_upvotes
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    submitted_by_name: Mapped[str | None] = mapped_column(String(100))  # external submitter (HF)
    source_upvotes: Mapped[int] = mapped_column(Integer, default=0)  # count reported by a source
    upvotes: Mapped[int] = mapped_column(Integer, default=0)  # source_upvotes + local votes
    source_comments: Mapped[int] = mapped_column(Integer, default=0)
    num_comments: Mapped[int] = mapped_column(Integer, default=0)  # source + visible local
    hotness: Mapped[float] = mapped_column(Float, default=0.0, index=True)  # trending, see ranking
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)  # moderation
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # ai_summary, organization...
    source: Mapped[str] = mapped_column(String(32), default="")  # last source that wrote it
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)

    # Partial (0006): bulk imports leave featured_date and submitted_by_id empty, so their rows
    # skip these indexes; queries must imply "IS NOT NULL" (a range, an equality) to use them.
    __table_args__ = (
        Index(
            "ix_papers_featured_upvotes",
            "featured_date",
            "upvotes",
            sqlite_where=text("featured_date IS NOT NULL"),
            postgresql_where=text("featured_date IS NOT NULL"),
        ),
        # Trending windows rank from this index alone (see ranking.trending).
        Index(
            "ix_papers_featured_hotness",
            "featured_date",
            "hotness",
            "arxiv_id",
            "hidden",
            sqlite_where=text("featured_date IS NOT NULL"),
            postgresql_where=text("featured_date IS NOT NULL"),
        ),
        Index(
            "ix_papers_submitted_by_id",
            "submitted_by_id",
            sqlite_where=text("submitted_by_id IS NOT NULL"),
            postgresql_where=text("submitted_by_id IS NOT NULL"),
        ),
        # Search drops the few hidden papers from its candidates by reading them all (0011).
        Index(
            "ix_papers_hidden", "id", sqlite_where=text("hidden"), postgresql_where=text("hidden")
        ),
    )


class PaperAuthor(Base):
    """Author names per paper, normalised for author pages, follows and `author:` filters."""

    __tablename__ = "paper_authors"

    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    name_key: Mapped[str] = mapped_column(String(300), index=True)  # lowercase, accents folded

    __table_args__ = ({"sqlite_with_rowid": False},)  # one B-tree per row, not two (0004)


class PaperCategory(Base):
    __tablename__ = "paper_categories"

    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class Embedding(Base):
    """A paper's semantic vector (float32 bytes), recomputed when its text changes."""

    __tablename__ = "embeddings"

    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(100))
    text_hash: Mapped[str] = mapped_column(String(64))  # of the embedded text
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    # A vector per abstract sentence (embedder.sentences), packed as int8 records
    # (embedder.pack_sentences), for rescoring search candidates; NULL: not computed yet,
    # b"": nothing to embed.
    sentences: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class SimilarPapers(Base):
    """A paper's nearest neighbours as last computed (search.similar on PostgreSQL: an HNSW
    query costs the database ~14 ms per paper page; this row is one primary-key read). Valid
    for its embedding (model, text_hash) and PAPERFEED_SIMILAR_CACHE_S seconds."""

    __tablename__ = "similar_papers"

    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(100))
    text_hash: Mapped[str] = mapped_column(String(64))
    # {"asked": n, "found": [[paper id, cosine], ...] best first}; fewer found than asked:
    # the index had no more
    neighbours: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class IngestState(Base):
    """Checkpoints for resumable ingestion (OAI resumption tokens, snapshot offsets)."""

    __tablename__ = "ingest_state"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    votes_public: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class UserSession(Base):
    """Server-side session; the cookie carries a random token, the table its SHA-256."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Vote(Base):
    __tablename__ = "votes"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), index=True
    )
    body_md: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)  # sanitised at write time
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    edited_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)


class Collection(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "slug", name="uq_collections_user_slug"),)


class CollectionItem(Base):
    __tablename__ = "collection_items"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Follow(Base):
    """A user's followed author (kind='author', value=name_key) or category (kind='category')."""

    __tablename__ = "follows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "kind", "value", name="uq_follows_user_kind"),)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(50))
    target_type: Mapped[str] = mapped_column(String(30))
    target_id: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class RateLimit(Base):
    """Fixed-window counters in the database, so limits hold across worker processes."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # unix seconds
    count: Mapped[int] = mapped_column(Integer, default=0)


class Subscriber(Base):
    """A digest recipient: an email address, optionally tied to an account."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    frequency: Mapped[str] = mapped_column(String(10), default="daily")  # daily | weekly
    delivery_hour: Mapped[int] = mapped_column(Integer, default=8)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    sections: Mapped[list[Any]] = mapped_column(JSON, default=lambda: ["trending", "for_you"])
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class SavedSearch(Base):
    """A `/papers?q=` query saved as a digest subscription."""

    __tablename__ = "saved_searches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    query: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DigestSend(Base):
    """Idempotency key (subscriber, edition): one row, one message, ever."""

    __tablename__ = "digest_sends"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    edition: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    message_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)


class DigestPaper(Base):
    """Which papers a subscriber has been sent: never the same paper twice."""

    __tablename__ = "digest_papers"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    edition: Mapped[str] = mapped_column(String(40))


class Feedback(Base):
    """'More like this' (+1) / 'not interested' (-1) from digest links."""

    __tablename__ = "feedback"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    signal: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed for insert()/update()/delete() (mypy sees FromClause)."""
    return cast(Table, model.__table__)
