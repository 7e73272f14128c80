"""Factories for digest tests: papers, users, follows, embeddings, confirmed subscribers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, select, update

from paperfeed.config import Settings
from paperfeed.models import (
    Embedding,
    Follow,
    Paper,
    PaperAuthor,
    PaperCategory,
    SavedSearch,
    Subscriber,
    User,
    Vote,
    utcnow,
)

MONDAY = dt.date(2024, 5, 6)  # a Monday: papers featured Mon-Fri, nothing on the weekend
SATURDAY = dt.date(2024, 5, 11)
SUNDAY = dt.date(2024, 5, 12)
TOKEN_IN_URL = re.compile(
    r"/(?:subscribe/confirm|subscribe/manage|unsubscribe|digest/feedback)/([A-Za-z0-9_.\-]+)"
)


def add_paper(
    conn: Connection,
    arxiv_id: str,
    title: str,
    *,
    featured: dt.date | None,
    abstract: str = "An abstract.",
    authors: tuple[str, ...] = ("Ada Lovelace",),
    categories: tuple[str, ...] = ("cs.LG",),
    upvotes: int = 0,
    hotness: float = 0.0,
    vector: list[float] | None = None,
) -> int:
    pid = conn.execute(
        insert(Paper).values(
            arxiv_id=arxiv_id,
            title=title,
            abstract=abstract,
            authors=list(authors),
            categories=list(categories),
            primary_category=categories[0],
            featured_date=featured,
            upvotes=upvotes,
            hotness=hotness,
            published=featured,
        )
    ).inserted_primary_key[0]
    for pos, name in enumerate(authors):
        conn.execute(
            insert(PaperAuthor).values(paper_id=pid, position=pos, name=name, name_key=name.lower())
        )
    for cat in categories:
        conn.execute(insert(PaperCategory).values(paper_id=pid, category=cat))
    if vector is not None:
        conn.execute(
            insert(Embedding).values(
                paper_id=pid,
                model="test-model",
                text_hash="x",
                vector=np.asarray(vector, dtype=np.float32).tobytes(),
            )
        )
    return int(pid)


def add_user(conn: Connection, name: str) -> int:
    return int(
        conn.execute(
            insert(User).values(username=name, email=f"{name}@example.org", password_hash="x")
        ).inserted_primary_key[0]
    )


def follow(conn: Connection, user_id: int, kind: str, value: str) -> None:
    conn.execute(insert(Follow).values(user_id=user_id, kind=kind, value=value))


def upvote(conn: Connection, user_id: int, paper_id: int) -> None:
    conn.execute(insert(Vote).values(user_id=user_id, paper_id=paper_id))


def add_subscriber(
    conn: Connection,
    email: str,
    *,
    user_id: int | None = None,
    frequency: str = "daily",
    status: str = "active",
    searches: tuple[str, ...] = (),
    **values: Any,
) -> int:
    sid = int(
        conn.execute(
            insert(Subscriber).values(
                email=email,
                user_id=user_id,
                status=status,
                frequency=frequency,
                confirmed_at=utcnow() if status == "active" else None,
                **values,
            )
        ).inserted_primary_key[0]
    )
    for q in searches:
        conn.execute(insert(SavedSearch).values(subscriber_id=sid, query=q))
    return sid


def subscriber(conn: Connection, email: str) -> Any:
    return conn.execute(select(Subscriber).where(Subscriber.email == email)).one()


def set_status(conn: Connection, email: str, status: str) -> None:
    conn.execute(update(Subscriber).where(Subscriber.email == email).values(status=status))


def smtp_settings(settings: Settings, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mail_backend": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "mail_retry_backoff_s": 0.01,
        "base_url": "https://papers.example.org",
        "mail_from": "paperfeed <digest@papers.example.org>",
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def week_of_papers(conn: Connection) -> dict[str, int]:
    """Ten papers featured Monday to Friday of MONDAY's week, two a day, with vectors."""
    ids = {}
    for day in range(5):
        for k in range(2):
            n = day * 2 + k
            ids[f"p{n}"] = add_paper(
                conn,
                f"2405.{n:05d}",
                f"Paper {n}",
                featured=MONDAY + dt.timedelta(days=day),
                upvotes=10 * n,
                vector=[1.0, float(n), 0.0],
            )
    return ids
