"""Digest editions: which papers an edition covers and which of them each subscriber gets, and why.

An edition is (frequency, date). A daily edition covers the papers featured on that date, so it
follows the front page's rhythm: a date with nothing featured (weekends) has no edition at all.
A weekly edition covers the seven days ending on its date. Everything that is the same for all
subscribers (candidates, trending order, author/category indexes, vectors, saved-search hits) is
computed once per edition; per subscriber only set lookups and one small dot product remain.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, Date, bindparam, text

from paperfeed import search
from paperfeed.config import Settings

log = logging.getLogger(__name__)

ABSTRACT_CHARS = 280  # of each abstract shown in a digest: a teaser, the paper page has the rest
SEARCH_LIMIT = 500  # results asked of the search engine per saved search, then cut to the window
# Feedback "not interested": a candidate this close to a disliked paper is dropped from "For you".
DISLIKE_EXCLUDE_COS = 0.8
WEEKDAY_SATURDAY = 5


@dataclass(frozen=True)
class Edition:
    """One issue of the digest: daily for a date, or weekly for the 7 days ending on a date."""

    frequency: str
    date: dt.date

    def __post_init__(self) -> None:
        if self.frequency not in ("daily", "weekly"):
            raise ValueError(f"frequency must be daily or weekly, not {self.frequency!r}")

    @property
    def key(self) -> str:
        return f"{self.frequency}:{self.date.isoformat()}"

    @property
    def start(self) -> dt.date:
        return self.date if self.frequency == "daily" else self.date - dt.timedelta(days=6)

    @classmethod
    def parse(cls, key: str) -> Edition:
        frequency, _, day = key.partition(":")
        return cls(frequency, dt.date.fromisoformat(day))

    def label(self) -> str:
        if self.frequency == "daily":
            return self.date.strftime("%a %-d %b %Y")
        return f"week of {self.start.strftime('%-d %b')} to {self.date.strftime('%-d %b %Y')}"


@dataclass
class Candidate:
    """A paper of the edition's window, with what the digest shows of it."""

    id: int
    arxiv_id: str
    title: str
    authors: list[str]
    categories: list[str]
    abstract: str
    upvotes: int
    hotness: float
    rank: int = 0  # 0 = top of "Trending"


@dataclass
class EditionData:
    """Everything about an edition that does not depend on the subscriber."""

    edition: Edition
    candidates: list[Candidate]  # in trending order
    by_id: dict[int, Candidate]
    by_author: dict[str, list[int]]  # paper_authors.name_key -> candidate ids
    author_names: dict[tuple[int, str], str]  # (paper, name_key) -> display name
    by_category: dict[str, list[int]]
    model: str | None = None
    matrix: np.ndarray | None = None  # unit vectors of candidates with embeddings, one per row
    row_of: dict[int, int] = field(default_factory=dict)
    search_hits: dict[str, set[int]] = field(default_factory=dict)  # normalized query -> ids


def _snippet(abstract: str) -> str:
    abstract = " ".join((abstract or "").split())
    if len(abstract) <= ABSTRACT_CHARS:
        return abstract
    return abstract[: ABSTRACT_CHARS - 1].rsplit(" ", 1)[0] + "…"


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def has_edition(conn: Connection, edition: Edition) -> bool:
    """Whether the window has any featured paper (no empty issues)."""
    row = conn.execute(
        text(
            "SELECT 1 FROM papers WHERE featured_date BETWEEN :a AND :b AND NOT hidden LIMIT 1"
        ).bindparams(bindparam("a", type_=Date), bindparam("b", type_=Date)),
        {"a": edition.start, "b": edition.date},
    ).first()
    return row is not None


def load_edition(conn: Connection, edition: Edition) -> EditionData | None:
    """The edition's candidates and indexes, or None when nothing was featured in its window."""
    rows = conn.execute(
        text(
            "SELECT id, arxiv_id, title, abstract, authors, categories, upvotes, hotness "
            "FROM papers WHERE featured_date BETWEEN :a AND :b AND NOT hidden "
            # Stored trending score first (ranking writes it); upvotes until it is computed.
            "ORDER BY hotness DESC, upvotes DESC, id"
        ).bindparams(bindparam("a", type_=Date), bindparam("b", type_=Date)),
        {"a": edition.start, "b": edition.date},
    ).all()
    if not rows:
        return None
    candidates = []
    for rank, r in enumerate(rows):
        authors = r.authors if isinstance(r.authors, list) else _json(r.authors)
        categories = r.categories if isinstance(r.categories, list) else _json(r.categories)
        candidates.append(
            Candidate(
                r.id,
                r.arxiv_id,
                r.title,
                list(authors or []),
                list(categories or []),
                _snippet(r.abstract),
                int(r.upvotes or 0),
                float(r.hotness or 0.0),
                rank,
            )
        )
    by_id = {c.id: c for c in candidates}
    data = EditionData(edition, candidates, by_id, {}, {}, {})
    ids = list(by_id)
    for pid, name, key in conn.execute(
        text(
            "SELECT paper_id, name, name_key FROM paper_authors WHERE paper_id IN :ids"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": ids},
    ):
        data.by_author.setdefault(key, []).append(pid)
        data.author_names[(pid, key)] = name
    for pid, category in conn.execute(
        text("SELECT paper_id, category FROM paper_categories WHERE paper_id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        ),
        {"ids": ids},
    ):
        data.by_category.setdefault(category, []).append(pid)
    if not data.by_category:  # catalog without the normalised table: use the JSON column
        for c in candidates:
            for category in c.categories:
                data.by_category.setdefault(category, []).append(c.id)
    _load_vectors(conn, data)
    return data


def _json(value: Any) -> Any:
    return json.loads(value) if value else []


def _load_vectors(conn: Connection, data: EditionData) -> None:
    rows = conn.execute(
        text("SELECT paper_id, model, vector FROM embeddings WHERE paper_id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        ),
        {"ids": list(data.by_id)},
    ).all()
    if not rows:
        return
    # One model per comparison: the one most candidates are embedded with.
    models: dict[str, int] = {}
    for r in rows:
        models[r.model] = models.get(r.model, 0) + 1
    data.model = max(models, key=lambda m: models[m])
    kept = [r for r in rows if r.model == data.model]
    dim = len(kept[0].vector) // 4
    kept = [r for r in kept if len(r.vector) == dim * 4]
    data.matrix = _unit(np.stack([np.frombuffer(r.vector, dtype=np.float32) for r in kept]))
    data.row_of = {r.paper_id: i for i, r in enumerate(kept)}


# --- saved searches -----------------------------------------------------------------------------

SearchFn = Callable[[str], Iterable[int]]


def catalog_search(conn: Connection, settings: Settings) -> SearchFn | None:
    """Saved searches run through the catalog's hybrid search once its index is built."""
    if not search.is_indexed(settings):
        return None

    def run(query: str) -> list[int]:
        ids: list[int] = []
        for offset in range(0, SEARCH_LIMIT, search.MAX_LIMIT):  # the engine pages by 100
            page = search.search(conn, settings, query, limit=search.MAX_LIMIT, offset=offset)
            ids += [hit.paper_id for hit in page.hits]
            if len(page.hits) < search.MAX_LIMIT:
                break
        return ids

    return run


def normalize_query(query: str) -> str:
    return " ".join(query.lower().split())


def _fallback_matches(data: EditionData, query: str) -> set[int]:
    """FALLBACK when no search index is built: every query word in the title or abstract.

    Deliberately simple (substring match, like SQL LIKE '%word%'); the search engine does
    stemming, ranking and semantics, and is used whenever it can answer.
    """
    words = [w.strip('"') for w in query.split()]
    words = [w for w in words if w]
    hits = set()
    for c in data.candidates:
        haystack = f"{c.title} {c.abstract}".lower()
        if words and all(w in haystack for w in words):
            hits.add(c.id)
    return hits


def search_hits(data: EditionData, query: str, search: SearchFn | None) -> set[int]:
    """Candidates matching a saved search, computed once per distinct query per edition."""
    key = normalize_query(query)
    hits = data.search_hits.get(key)
    if hits is None:
        if search is not None:
            try:
                hits = {pid for pid in search(key) if pid in data.by_id}
            except Exception as exc:  # index not built, or broken: say so, still send
                log.warning("search failed for saved search %r (%s); using the fallback", key, exc)
                hits = _fallback_matches(data, key)
        else:
            hits = _fallback_matches(data, key)
        data.search_hits[key] = hits
    return hits


# --- per-subscriber selection -------------------------------------------------------------------


@dataclass
class Profile:
    """What one subscriber asked for and did, restricted to what selection needs."""

    subscriber_id: int
    email: str
    status: str
    user_id: int | None
    bounce_count: int
    sections: list[str]
    authors: list[str] = field(default_factory=list)  # followed name_keys
    categories: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    upvoted: set[int] = field(default_factory=set)  # votes + "more like this"
    collected: set[int] = field(default_factory=set)
    disliked: set[int] = field(default_factory=set)  # "not interested"
    sent: set[int] = field(default_factory=set)  # candidates already sent in earlier editions


@dataclass(frozen=True)
class Item:
    section: str  # "trending" | "for_you"
    paper_id: int
    reason: str  # one line; "" for trending


def load_profiles(conn: Connection, data: EditionData, subscriber_ids: list[int]) -> list[Profile]:
    """Profiles of a batch of subscribers with a fixed number of queries (not one per person)."""
    if not subscriber_ids:
        return []
    expand = {"sids": subscriber_ids}

    def q(sql: str, **params: Any) -> Any:
        stmt = text(sql).bindparams(*(bindparam(k, expanding=True) for k in params))
        return conn.execute(stmt, params)

    profiles: dict[int, Profile] = {}
    for r in q(
        "SELECT id, email, status, user_id, bounce_count, sections FROM subscribers "
        "WHERE id IN :sids",
        **expand,
    ):
        sections = r.sections if isinstance(r.sections, list) else _json(r.sections)
        profiles[r.id] = Profile(
            r.id, r.email, r.status, r.user_id, r.bounce_count, list(sections or [])
        )
    by_user: dict[int, list[Profile]] = {}
    for p in profiles.values():
        if p.user_id is not None:
            by_user.setdefault(p.user_id, []).append(p)
    uids = list(by_user) or [-1]
    for r in q("SELECT user_id, kind, value FROM follows WHERE user_id IN :uids", uids=uids):
        for p in by_user[r.user_id]:
            (p.authors if r.kind == "author" else p.categories).append(r.value)
    for r in q(
        "SELECT subscriber_id, user_id, query FROM saved_searches "
        "WHERE subscriber_id IN :sids OR user_id IN :uids ORDER BY id",
        sids=subscriber_ids,
        uids=uids,
    ):
        owners = [profiles[r.subscriber_id]] if r.subscriber_id in profiles else []
        owners += by_user.get(r.user_id, []) if r.user_id is not None else []
        for p in owners:
            if r.query not in p.searches:
                p.searches.append(r.query)
    for r in q("SELECT user_id, paper_id FROM votes WHERE user_id IN :uids", uids=uids):
        for p in by_user[r.user_id]:
            p.upvoted.add(r.paper_id)
    for r in q(
        "SELECT c.user_id, i.paper_id FROM collection_items i "
        "JOIN collections c ON c.id = i.collection_id WHERE c.user_id IN :uids",
        uids=uids,
    ):
        for p in by_user[r.user_id]:
            p.collected.add(r.paper_id)
    for r in q(
        "SELECT subscriber_id, paper_id, signal FROM feedback WHERE subscriber_id IN :sids",
        **expand,
    ):
        p = profiles[r.subscriber_id]
        if r.signal > 0:
            p.upvoted.add(r.paper_id)  # "more like this" counts as an upvote for similarity
        else:
            p.disliked.add(r.paper_id)
    for r in q(
        "SELECT subscriber_id, paper_id FROM digest_papers "
        "WHERE subscriber_id IN :sids AND paper_id IN :pids",
        sids=subscriber_ids,
        pids=list(data.by_id),
    ):
        profiles[r.subscriber_id].sent.add(r.paper_id)
    return [profiles[s] for s in subscriber_ids if s in profiles]


class VectorCache:
    """Unit vectors of liked papers (which may lie outside the edition), bounded in memory."""

    def __init__(self, model: str | None, limit: int = 50_000) -> None:  # ~75 MB at 384-d
        self.model = model
        self.limit = limit
        self._vectors: dict[int, np.ndarray | None] = {}

    def load(self, conn: Connection, paper_ids: Iterable[int]) -> None:
        missing = [p for p in set(paper_ids) if p not in self._vectors]
        if not missing or self.model is None:
            return
        if len(self._vectors) + len(missing) > self.limit:
            self._vectors.clear()
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(missing), 900):  # stay under SQLite's bound-parameter limit
            chunk = missing[start : start + 900]
            for pid, vector in conn.execute(
                text(
                    "SELECT paper_id, vector FROM embeddings WHERE model = :m AND paper_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"m": self.model, "ids": chunk},
            ):
                found[pid] = np.frombuffer(vector, dtype=np.float32)
        for pid in missing:
            self._vectors[pid] = found.get(pid)

    def mean(self, paper_ids: Iterable[int]) -> np.ndarray | None:
        vectors = [v for p in paper_ids if (v := self._vectors.get(p)) is not None]
        if not vectors:
            return None
        return _unit(np.mean(np.stack(vectors), axis=0))


def select_items(
    settings: Settings,
    data: EditionData,
    profile: Profile,
    search: SearchFn | None,
    vectors: VectorCache | None,
) -> list[Item]:
    """The subscriber's items: "For you" (with reasons) and "Trending", no paper twice, ever."""
    excluded = profile.sent | profile.disliked
    for_you: list[Item] = []
    if "for_you" in profile.sections:
        for_you = _for_you(settings, data, profile, search, vectors, excluded)
    taken = excluded | {i.paper_id for i in for_you}
    trending: list[Item] = []
    if "trending" in profile.sections:
        limit = (
            settings.digest_trending_daily
            if data.edition.frequency == "daily"
            else settings.digest_trending_weekly
        )
        for c in data.candidates:
            if len(trending) >= limit:
                break
            if c.id not in taken:
                trending.append(Item("trending", c.id, ""))
    return trending + for_you


def _for_you(
    settings: Settings,
    data: EditionData,
    profile: Profile,
    search: SearchFn | None,
    vectors: VectorCache | None,
    excluded: set[int],
) -> list[Item]:
    # score: strongest signal first (explicit asks beat similarity), trending rank breaks ties.
    scored: dict[int, tuple[float, str]] = {}

    def offer(pid: int, score: float, reason: str) -> None:
        if pid in excluded:
            return
        if pid not in scored or scored[pid][0] < score:
            scored[pid] = (score, reason)

    for query in profile.searches:
        for pid in search_hits(data, query, search):
            offer(pid, 4.0, f"matches your saved search '{query}'")
    for key in profile.authors:
        for pid in data.by_author.get(key, ()):
            offer(pid, 3.0, f"by {data.author_names.get((pid, key), key)}, whom you follow")
    for category in profile.categories:
        for pid in data.by_category.get(category, ()):
            offer(pid, 2.0, f"in {category}, which you follow")
    if vectors is not None and data.matrix is not None:
        _similar(settings, data, profile, vectors, offer, excluded, scored)
    ranked = sorted(scored.items(), key=lambda kv: (-kv[1][0], data.by_id[kv[0]].rank))
    return [
        Item("for_you", pid, reason) for pid, (_, reason) in ranked[: settings.digest_for_you_max]
    ]


def _similar(
    settings: Settings,
    data: EditionData,
    profile: Profile,
    vectors: VectorCache,
    offer: Callable[[int, float, str], None],
    excluded: set[int],
    scored: dict[int, tuple[float, str]],
) -> None:
    assert data.matrix is not None
    liked = profile.upvoted | profile.collected
    positive = vectors.mean(liked) if liked else None
    negative = vectors.mean(profile.disliked) if profile.disliked else None
    if positive is None and negative is None:
        return
    ids = list(data.row_of)
    neg = data.matrix @ negative if negative is not None else None
    if neg is not None:
        for pid, row in data.row_of.items():
            if neg[row] >= DISLIKE_EXCLUDE_COS:  # too close to something they did not want
                excluded.add(pid)
                scored.pop(pid, None)
    if positive is None:
        return
    sims = data.matrix @ positive
    if neg is not None:
        sims = sims - 0.5 * np.clip(neg, 0.0, None)  # downweight what resembles dislikes
    what = "upvoted" if profile.upvoted else "saved"
    for pid in ids:
        sim = float(sims[data.row_of[pid]])
        if sim >= settings.digest_similarity_min and pid not in liked:
            offer(pid, 1.0 + sim, f"similar to papers you {what}")
