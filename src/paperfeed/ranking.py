"""Trending: the one formula, its constants, the stored `papers.hotness`, and the trending listing.

The score follows the "hot" rankings of Reddit and Lobsters, which are the published refinements
of Hacker News' gravity formula:

* Hacker News: ``score = (points - 1) / (age_hours + 2) ** 1.8`` (Paul Graham / Arc source,
  https://news.ycombinator.com/item?id=1781013). It depends on "now", so it must be recomputed
  as the clock moves.
* Reddit ``_hot``: ``log10(max(|votes|, 1)) + seconds_since_epoch / 45000``
  (https://github.com/reddit-archive/reddit/blob/master/r2/r2/lib/db/_sorts.pyx). Because the
  age term is anchored to the submission time instead of "now", the score never changes while
  nothing happens, so it can be stored and indexed.
* Lobsters ``Story#calculated_hotness`` (https://github.com/lobsters/lobsters, app/models/story.rb):
  the same anchored form, with comment activity added to the vote score, stored in the indexed
  ``stories.hotness`` column and updated in the vote's own transaction.

paperfeed stores, per paper::

    hotness = Wv*log10(1+upvotes) + Wc*log10(1+comments)
            + Ws*log10(1+stars) + Wg*log10(1+stars_gained_per_day)
            + anchor_seconds / G

where ``anchor`` is the moment the paper was featured (midnight UTC of ``featured_date``), else
its publication date, else when it entered the catalog. Subtracting ``now / G`` from every paper
gives the familiar "engagement minus age penalty" without changing the order, which is how the
breakdown on each card is shown. Logarithms make the tenth vote worth as much as the next
ninety (each tenfold costs the same effort), exactly as in Reddit and Lobsters.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, tuple_, update

from paperfeed.config import Settings
from paperfeed.models import IngestState, Paper, table_of, utcnow

papers_t = table_of(Paper)
state_t = table_of(IngestState)

# ---- The formula's constants (defaults; PAPERFEED_TRENDING_* override, see Weights) --------

# Seconds of age that cost one point. One day: on a daily front page a paper must gather ten
# times the votes of the next day's paper to stay above it for a day (Reddit: 45000 s for a
# faster-moving site; papers are read over days, not hours).
GRAVITY_S = 86400.0
# Points per tenfold upvotes: the unit of the scale (the votes are the primary signal).
VOTE_WEIGHT = 1.0
# Points per tenfold comments: half a vote-decade. A discussion shows interest, but a thread of
# replies is cheaper to inflate than votes from distinct users (Lobsters also weights comment
# activity below story votes).
COMMENT_WEIGHT = 0.5
# Points per tenfold GitHub stars: a quarter. Stars accrue over the repository's whole life, often
# before the paper, so the total is a weak signal of *current* interest.
STAR_WEIGHT = 0.25
# Points per tenfold stars gained per day (where the star history is known): growth is the
# current-interest part of code popularity, so it counts twice the total.
GROWTH_WEIGHT = 0.5
# Star growth is measured over at most this many days of history (older samples are stale).
GROWTH_WINDOW_DAYS = 30

_EPOCH = dt.datetime(1970, 1, 1)
WEIGHTS_KEY = "ranking.weights"  # ingest_state row recording the weights hotness was stored with

WINDOWS: dict[str, int | None] = {"day": 1, "week": 7, "month": 30, "all": None}  # days
WINDOW_LABELS = {"day": "Today", "week": "This week", "month": "This month", "all": "All time"}


@dataclass(frozen=True)
class Weights:
    """The tunable constants of the formula, in the units documented above."""

    gravity_s: float = GRAVITY_S
    vote: float = VOTE_WEIGHT
    comment: float = COMMENT_WEIGHT
    star: float = STAR_WEIGHT
    growth: float = GROWTH_WEIGHT

    @classmethod
    def from_settings(cls, settings: Settings) -> Weights:
        return cls(
            gravity_s=settings.trending_gravity_s,
            vote=settings.trending_vote_weight,
            comment=settings.trending_comment_weight,
            star=settings.trending_star_weight,
            growth=settings.trending_growth_weight,
        )


@dataclass(frozen=True)
class Breakdown:
    """Why a paper ranks where it does: points per signal and its anchored age."""

    votes: float
    comments: float
    code: float
    anchor: dt.datetime  # naive UTC
    gravity_s: float

    @property
    def engagement(self) -> float:
        return self.votes + self.comments + self.code

    @property
    def hotness(self) -> float:
        """The stored, clock-free score (engagement + anchor / gravity)."""
        return self.engagement + (self.anchor - _EPOCH).total_seconds() / self.gravity_s

    def age_penalty(self, now: dt.datetime) -> float:
        """Points lost to age at `now` (naive UTC); never negative."""
        return max(0.0, (now - self.anchor).total_seconds() / self.gravity_s)

    def score_at(self, now: dt.datetime) -> float:
        """Engagement minus age penalty: orders papers exactly as `hotness` does."""
        return self.engagement - (now - self.anchor).total_seconds() / self.gravity_s


def _log_points(weight: float, count: float | None) -> float:
    return weight * math.log10(1.0 + max(0.0, float(count or 0)))


def anchor_of(
    featured_date: dt.date | None, published: dt.date | None, created_at: dt.datetime | None
) -> dt.datetime:
    """When the paper's clock starts: featured day, else publication day, else catalog entry."""
    day = featured_date or published
    if day is not None:
        return dt.datetime(day.year, day.month, day.day)
    return created_at or _EPOCH


def stars_per_day(extra: Mapping[str, Any] | None) -> float | None:
    """Star growth from `extra["code_stars_history"]` ([{"date", "stars"}]); None if unknown."""
    history = (extra or {}).get("code_stars_history")
    if not isinstance(history, list):
        return None
    points: list[tuple[dt.date, int]] = []
    for sample in history:
        try:
            points.append((dt.date.fromisoformat(str(sample["date"])[:10]), int(sample["stars"])))
        except (KeyError, TypeError, ValueError):
            continue
    if len(points) < 2:
        return None
    points.sort()
    last_day, last_stars = points[-1]
    recent = [p for p in points if (last_day - p[0]).days <= GROWTH_WINDOW_DAYS]
    first_day, first_stars = recent[0]
    days = (last_day - first_day).days
    if days <= 0:
        return None
    return max(0.0, (last_stars - first_stars) / days)


def breakdown(
    *,
    upvotes: int,
    num_comments: int,
    code_stars: int | None,
    stars_growth: float | None,
    anchor: dt.datetime,
    weights: Weights,
) -> Breakdown:
    """The formula (module docstring), split into its signals."""
    code = _log_points(weights.star, code_stars) + _log_points(weights.growth, stars_growth)
    return Breakdown(
        votes=_log_points(weights.vote, upvotes),
        comments=_log_points(weights.comment, num_comments),
        code=code,
        anchor=anchor,
        gravity_s=weights.gravity_s,
    )


def breakdown_for(paper: Any, weights: Weights) -> Breakdown:
    """The breakdown of a papers row (or anything with the same attributes)."""
    return breakdown(
        upvotes=paper.upvotes or 0,
        num_comments=paper.num_comments or 0,
        code_stars=paper.code_stars,
        stars_growth=stars_per_day(paper.extra),
        anchor=anchor_of(paper.featured_date, paper.published, paper.created_at),
        weights=weights,
    )


def hotness_of(row: Mapping[str, Any], weights: Weights) -> float:
    """breakdown_for(...).hotness of a row as a mapping (a dict, a Row's _mapping): no object
    wrapped around it on the write paths (ingest batches, votes)."""
    return breakdown(
        upvotes=row["upvotes"] or 0,
        num_comments=row["num_comments"] or 0,
        code_stars=row["code_stars"],
        stars_growth=stars_per_day(row["extra"]),
        anchor=anchor_of(row["featured_date"], row["published"], row.get("created_at")),
        weights=weights,
    ).hotness


# ---- Stored hotness ------------------------------------------------------------------------


def active_weights(conn: Connection) -> Weights:
    """The weights the stored hotness was computed with (defaults until a rescore says else)."""
    value = conn.execute(select(state_t.c.value).where(state_t.c.key == WEIGHTS_KEY)).scalar()
    if not isinstance(value, dict):
        return Weights()
    try:
        return Weights(**{k: float(v) for k, v in value.items()})
    except (TypeError, ValueError):
        return Weights()


HOTNESS_COLS = (  # what hotness is computed from (and the stored value)
    papers_t.c.id,
    papers_t.c.upvotes,
    papers_t.c.num_comments,
    papers_t.c.code_stars,
    papers_t.c.extra,
    papers_t.c.featured_date,
    papers_t.c.published,
    papers_t.c.created_at,
    papers_t.c.hotness,
)


def refresh_hotness(
    conn: Connection, paper_ids: Iterable[int], weights: Weights | None = None
) -> int:
    """Recompute the stored hotness of these papers (call after votes/comments change them).

    Uses the active weights unless given; returns how many rows changed. Runs in the caller's
    transaction, so a vote and its effect on ranking commit together (Lobsters' approach).
    """
    ids = list(dict.fromkeys(paper_ids))
    if not ids:
        return 0
    weights = weights or active_weights(conn)
    changed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = conn.execute(select(*HOTNESS_COLS).where(papers_t.c.id.in_(chunk))).all()
        changed += store_hotness(conn, rows, weights)
    return changed


def store_hotness(conn: Connection, rows: Iterable[Any], weights: Weights | None = None) -> int:
    """Write the hotness of papers read with HOTNESS_COLS (e.g. an UPDATE's RETURNING) where
    it changed; returns how many rows changed."""
    weights = weights or active_weights(conn)
    changed: list[dict[str, Any]] = []
    for row in rows:
        value = breakdown_for(row, weights).hotness
        if row.hotness is None or abs(row.hotness - value) > 1e-9:
            changed.append({"pid": row.id, "h": value})
    if changed:
        conn.execute(
            update(papers_t)
            .where(papers_t.c.id == bindparam("pid"))
            .values(hotness=bindparam("h")),
            changed,
        )
    return len(changed)


def rescore(conn: Connection, weights: Weights, batch: int = 5000) -> int:
    """Recompute every paper's hotness with new weights and record them as active."""
    last, changed = 0, 0
    while True:
        ids = list(
            conn.execute(
                select(papers_t.c.id)
                .where(papers_t.c.id > last)
                .order_by(papers_t.c.id)
                .limit(batch)
            ).scalars()
        )
        if not ids:
            break
        changed += refresh_hotness(conn, ids, weights)
        last = ids[-1]
    exists = conn.execute(select(state_t.c.key).where(state_t.c.key == WEIGHTS_KEY)).first()
    values = {"value": asdict(weights), "updated_at": utcnow()}
    if exists:
        conn.execute(update(state_t).where(state_t.c.key == WEIGHTS_KEY).values(**values))
    else:
        conn.execute(state_t.insert().values(key=WEIGHTS_KEY, **values))
    return changed


# ---- Trending listing ----------------------------------------------------------------------


class BadCursor(ValueError):
    """A pagination cursor that this listing did not produce."""


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    """Opaque keyset cursor: the sort kind and the last row's sort key."""
    raw = json.dumps([kind, *key], separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> list[Any]:
    """The sort key a cursor carries; BadCursor if it is malformed or for another listing."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("malformed cursor") from exc
    if not isinstance(value, list) or len(value) < 2 or value[0] != kind:
        raise BadCursor(f"this cursor does not belong to a {kind!r} listing")
    return value[1:]


def window_start(conn: Connection, window: str) -> dt.date | None:
    """First featured day inside the window, counted back from the latest featured day."""
    days = WINDOWS[window]
    if days is None:
        return None
    latest = conn.execute(
        select(func.max(papers_t.c.featured_date)).where(
            papers_t.c.hidden.is_(False),
            papers_t.c.featured_date.is_not(None),  # partial index
        )
    ).scalar()
    latest = latest or dt.date.today()
    return latest - dt.timedelta(days=days - 1)


def trending(
    conn: Connection, window: str = "week", *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Any], str | None]:
    """Featured papers by stored hotness (ties: higher arXiv id first) and the next cursor.

    `window` is one of WINDOWS; `cursor` continues a previous page (BadCursor if foreign).
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    query = select(papers_t).where(
        papers_t.c.hidden.is_(False), papers_t.c.featured_date.is_not(None)
    )
    start = window_start(conn, window)
    order: Any = papers_t.c.hotness
    if start is not None:
        query = query.where(papers_t.c.featured_date >= start)
        # "+ 0" keeps the planner off the hotness index here: walking it for a window holding
        # fewer rows than `limit` visits the whole catalog (1 s at 300k papers); the
        # featured_date range then a top-N sort is bounded by the window's size.
        order = papers_t.c.hotness + 0
    kind = f"trending:{window}"
    if cursor:
        key = decode_cursor(kind, cursor)
        try:
            hot, arxiv_id = float(key[0]), str(key[1])
        except (IndexError, TypeError, ValueError) as exc:
            raise BadCursor("malformed cursor") from exc
        query = query.where(tuple_(papers_t.c.hotness, papers_t.c.arxiv_id) < (hot, arxiv_id))
    # Rank narrow rows first (index-only for windows), then fetch the page's full rows.
    ranked = (
        query.with_only_columns(papers_t.c.id)
        .order_by(order.desc(), papers_t.c.arxiv_id.desc())
        .limit(limit + 1)
    )
    ids = list(conn.execute(ranked).scalars())
    by_id = {r.id: r for r in conn.execute(select(papers_t).where(papers_t.c.id.in_(ids)))}
    rows = [by_id[i] for i in ids]
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = encode_cursor(kind, [repr(rows[-1].hotness), rows[-1].arxiv_id])
    return rows, nxt
