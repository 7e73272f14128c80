"""The catalog: merge source records into papers, fetch one, list featured days/weeks/months."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, Dialect, Row, bindparam, delete, func, select, update

from paperfeed import db, ranking
from paperfeed.models import Paper, PaperAuthor, PaperCategory, table_of, utcnow
from paperfeed.sources import PaperRecord, find_code_url, parse_arxiv_id

papers_t = table_of(Paper)
authors_t = table_of(PaperAuthor)
categories_t = table_of(PaperCategory)

# Fields that describe the paper itself and follow arXiv's versioning: a record for an older
# version may fill gaps but never overwrite what a newer version said.
BIBLIOGRAPHIC = (
    "title",
    "abstract",
    "authors",
    "categories",
    "comments",
    "journal_ref",
    "doi",
    "license",
    "updated",
)
# Fields a source reports about the paper's life on paperfeed or the web: the latest report wins.
REPORTED = ("code_url", "code_stars", "project_page", "submitted_by_name")
# Columns compared to decide new / updated / unchanged (row timestamps excluded).
TRACKED = (
    *BIBLIOGRAPHIC,
    *REPORTED,
    "version",
    "versions",
    "primary_category",
    "published",
    "featured_date",
    "source_upvotes",
    "upvotes",
    "source_comments",
    "num_comments",
    "extra",
)


@dataclass
class UpsertStats:
    """What a batch did to the catalog."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: UpsertStats) -> UpsertStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


@functools.lru_cache(maxsize=65536)  # author names repeat a lot across papers
def name_key(name: str) -> str:
    """Author-name key for lookups: accents folded, lowercase, single spaces."""
    if not name.isascii():
        name = unicodedata.normalize("NFKD", name)
        name = "".join(c for c in name if not unicodedata.combining(c))
    return " ".join(name.lower().replace(".", ". ").split())


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _merge_versions(a: list[Any], b: list[Any]) -> list[Any]:
    by_number = {int(v["version"]): v for v in a}
    for v in b:
        by_number.setdefault(int(v["version"]), v)
    return [by_number[k] for k in sorted(by_number)]


def _new_row(rec: PaperRecord) -> dict[str, Any]:
    row: dict[str, Any] = {
        "arxiv_id": rec.arxiv_id,
        "version": rec.version or 0,
        "versions": list(rec.versions),
        "title": rec.title,
        "abstract": rec.abstract or "",
        "authors": list(rec.authors),
        "categories": list(rec.categories),
        "primary_category": rec.categories[0] if rec.categories else None,
        "published": rec.published,
        "updated": rec.updated,
        "comments": rec.comments,
        "journal_ref": rec.journal_ref,
        "doi": rec.doi,
        "license": rec.license,
        "code_url": rec.code_url or find_code_url(rec.abstract, rec.comments),
        "code_stars": rec.code_stars,
        "project_page": rec.project_page,
        "featured_date": rec.featured_date,
        "submitted_by_name": rec.submitted_by_name,
        "source_upvotes": rec.upvotes or 0,
        "upvotes": rec.upvotes or 0,
        "source_comments": rec.num_comments or 0,
        "num_comments": rec.num_comments or 0,
        "extra": dict(rec.extra),
        "source": rec.source,
    }
    return row


def _merged_row(cur: dict[str, Any], rec: PaperRecord) -> dict[str, Any]:
    """Apply a record to the current row: newer versions win, older ones only fill gaps."""
    row = dict(cur)
    v_in, v_cur = rec.version or 0, cur["version"] or 0
    # An unversioned record (HF, our JSONL) is authoritative only over unversioned data.
    authoritative = v_in > v_cur or (v_in == v_cur and (v_in > 0 or v_cur == 0))
    incoming = _new_row(rec)
    for key in BIBLIOGRAPHIC:
        value = incoming[key]
        if _is_empty(value):
            continue
        if authoritative or _is_empty(row[key]):
            row[key] = value
    row["primary_category"] = row["categories"][0] if row["categories"] else None
    row["version"] = max(v_in, v_cur)
    row["versions"] = _merge_versions(cur["versions"] or [], incoming["versions"])
    if incoming["published"] and (not row["published"] or incoming["published"] < row["published"]):
        row["published"] = incoming["published"]
    for key in REPORTED:
        if rec.__dict__.get(key) is not None:
            row[key] = getattr(rec, key)
    if not row["code_url"]:
        row["code_url"] = find_code_url(row["abstract"], row["comments"])
    if rec.featured_date and (not row["featured_date"] or rec.featured_date < row["featured_date"]):
        row["featured_date"] = rec.featured_date
    local_votes = cur["upvotes"] - cur["source_upvotes"]
    local_comments = cur["num_comments"] - cur["source_comments"]
    if rec.upvotes is not None:
        row["source_upvotes"] = rec.upvotes
    if rec.num_comments is not None:
        row["source_comments"] = rec.num_comments
    row["upvotes"] = row["source_upvotes"] + local_votes
    row["num_comments"] = row["source_comments"] + local_comments
    if rec.extra:
        row["extra"] = {**(cur["extra"] or {}), **rec.extra}
    return row


MAX_PARAMS = 30_000  # bind parameters per statement (SQLite allows 32,766; PostgreSQL 65,535)
MAX_ROWS_PER_INSERT = 500  # rows per multi-row INSERT


def _insert_rows(conn: Connection, table: str, cols: Sequence[str], rows: Sequence[tuple]) -> None:
    """Plain DBAPI multi-row INSERTs (hundreds of rows per statement). Bulk imports write
    ~10 rows per paper: SQLAlchemy's per-row parameter handling would cost more than the
    database's insert itself, and on PostgreSQL one statement carries hundreds of rows."""
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    one = f"({', '.join([mark] * len(cols))})"
    head = f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in cols)}) VALUES "
    per = max(1, min(MAX_ROWS_PER_INSERT, MAX_PARAMS // len(cols)))
    for start in range(0, len(rows), per):
        part = rows[start : start + per]
        flat = tuple(itertools.chain.from_iterable(part))
        conn.exec_driver_sql(head + ", ".join([one] * len(part)), flat)


# A new papers row, column by column: _new_row's keys, then what the insert adds.
NEW_COLS = (
    *_new_row(PaperRecord(arxiv_id="0", title="", source="")),
    "hidden",
    "hotness",
    "created_at",
    "modified_at",
)
_STAMPS = 2  # created_at and modified_at, the last columns: set by the writer at insert time


@functools.cache
def _converters(dialect: Dialect) -> tuple[tuple[int, Any], ...]:
    """(position in NEW_COLS, bind processor) of the columns whose values this dialect's
    driver needs converted (JSON to text; on SQLite, dates to ISO strings): what SQLAlchemy
    would do per row, without its per-row overhead."""
    out = []
    for i, col in enumerate(NEW_COLS):
        f = papers_t.c[col].type.dialect_impl(dialect).bind_processor(dialect)
        if f is not None:
            out.append((i, f))
    return tuple(out)


def _author_rows(authors: Sequence[str]) -> list[tuple[int, str, str]]:
    return [(i, n[:300], name_key(n)[:300]) for i, n in enumerate(authors)]


# A paper prepared for insertion: NEW_COLS values without the timestamps, bound for one
# dialect; its (position, name, name_key) author rows; its categories; whether its hotness
# still lacks the age term of its insert time (no featured or published date to anchor on).
NewPaper = tuple[tuple[Any, ...], list[tuple[int, str, str]], list[str], bool]
_HOTNESS = NEW_COLS.index("hotness")


@dataclass(frozen=True)
class Prepared:
    """prepare_new's output for a batch of records, with what it assumed."""

    dialect: str
    weights: ranking.Weights
    papers: Sequence[NewPaper]


def prepare_new(
    records: Sequence[PaperRecord], dialect: Dialect, weights: ranking.Weights
) -> Prepared:
    """Convert records as if each were a new paper, without the database: a bulk ingest runs
    this in its reader process so that the writer only inserts (ingest.ReadAhead)."""
    out: list[NewPaper] = []
    for rec in records:
        row = _new_row(rec)
        row.update(hidden=False, created_at=None)  # undated: anchored at the epoch for now
        row["hotness"] = ranking.hotness_of(row, weights)
        values = _bound(dialect, [row[c] for c in NEW_COLS[:-_STAMPS]])
        categories = list(dict.fromkeys(row["categories"]))
        undated = row["featured_date"] is None and row["published"] is None
        out.append((values, _author_rows(row["authors"]), categories, undated))
    return Prepared(dialect.name, weights, out)


def _bound(dialect: Dialect, values: list[Any], first: int = 0) -> tuple[Any, ...]:
    """Values of NEW_COLS[first : first + len(values)], converted for the dialect."""
    end = first + len(values)
    for i, f in _converters(dialect):
        if first <= i < end:
            values[i - first] = f(values[i - first])
    return tuple(values)


SideRows = tuple[int, Sequence[tuple[int, str, str]], Sequence[str]]  # (paper id, authors, cats)


def _side_rows(row: dict[str, Any]) -> SideRows:
    return row["id"], _author_rows(row["authors"]), list(dict.fromkeys(row["categories"]))


def _write_side_tables(
    conn: Connection, rows: Sequence[SideRows], *, replace: Sequence[int] = ()
) -> None:
    """Write the author and category rows of papers; those in `replace` lose theirs first."""
    if replace:
        conn.execute(delete(authors_t).where(authors_t.c.paper_id.in_(replace)))
        conn.execute(delete(categories_t).where(categories_t.c.paper_id.in_(replace)))
    author_rows = [(pid, *a) for pid, authors, _ in rows for a in authors]
    cat_rows = [(pid, c) for pid, _, cats in rows for c in cats]
    _insert_rows(conn, "paper_authors", ("paper_id", "position", "name", "name_key"), author_rows)
    _insert_rows(conn, "paper_categories", ("paper_id", "category"), cat_rows)


_SET = (*TRACKED, "source", "hotness", "modified_at")
_UPDATE = (
    update(papers_t)
    .where(papers_t.c.id == bindparam("row_id"))
    .values({k: bindparam(f"new_{k}") for k in _SET})
)


def upsert_records(
    conn: Connection, records: Sequence[PaperRecord], prepared: Prepared | None = None
) -> UpsertStats:
    """Merge a batch of source records into the catalog; idempotent (a rerun changes nothing).

    New and changed rows get their trending hotness here, in the same write (see ranking.py).
    `prepared` (prepare_new of the same records) is used for the records that turn out to be
    new papers, when it was made for this dialect and these weights.
    """
    stats = UpsertStats()
    if not records:
        return stats
    db.serialize(conn, "catalog")  # concurrent ingesters on PostgreSQL: see db.serialize
    wanted = list(dict.fromkeys(r.arxiv_id for r in records))
    keys = (*TRACKED, "source", "created_at")
    cols = [papers_t.c.id, papers_t.c.arxiv_id, *(papers_t.c[k] for k in keys)]
    current: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for found in conn.execute(select(*cols).where(papers_t.c.arxiv_id.in_(chunk))):
            current[found.arxiv_id] = dict(found._mapping)
    originals = {k: dict(v) for k, v in current.items()}
    weights = ranking.active_weights(conn)
    ready: dict[str, NewPaper] = {}  # new papers whose prepared row is valid as it is
    if (
        prepared is not None
        and prepared.dialect == conn.dialect.name
        and prepared.weights == weights
        and len(prepared.papers) == len(records)
    ):
        once = Counter(r.arxiv_id for r in records)
        for rec, new in zip(records, prepared.papers, strict=True):
            if once[rec.arxiv_id] == 1 and rec.arxiv_id not in current:
                ready[rec.arxiv_id] = new
    for rec in records:
        if rec.arxiv_id in ready:
            continue
        cur = current.get(rec.arxiv_id)
        current[rec.arxiv_id] = _new_row(rec) if cur is None else _merged_row(cur, rec)
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for arxiv_id in wanted:
        if arxiv_id in ready:
            stats.new += 1
            continue
        row: dict[str, Any] = current[arxiv_id]
        before = originals.get(arxiv_id)
        if before is None:
            row.update(created_at=now, modified_at=now, hidden=False)
            row["hotness"] = ranking.hotness_of(row, weights)
            inserts.append(row)
            stats.new += 1
        elif any(row[k] != before[k] for k in TRACKED):
            row.update(modified_at=now)
            row["hotness"] = ranking.hotness_of(row, weights)
            updates.append(row)
            stats.updated += 1
        else:
            stats.unchanged += 1
    side: list[SideRows] = []
    if inserts or ready:
        stamps = _bound(conn.dialect, [now] * _STAMPS, len(NEW_COLS) - _STAMPS)
        values = [new[0] + stamps for new in ready.values() if not new[3]]
        if any(new[3] for new in ready.values()):  # undated: the age term of `now`, as _hotness
            age = ranking.breakdown(
                upvotes=0,
                num_comments=0,
                code_stars=None,
                stars_growth=None,
                anchor=now,
                weights=weights,
            ).hotness
            for new in ready.values():
                if new[3]:
                    hot = list(new[0])
                    hot[_HOTNESS] += age
                    values.append((*hot, *stamps))
        values += [_bound(conn.dialect, [r[c] for c in NEW_COLS]) for r in inserts]
        _insert_rows(conn, "papers", NEW_COLS, values)
        new_ids = [*ready, *(r["arxiv_id"] for r in inserts)]  # any order: ids looked up
        id_of: dict[str, int] = {}
        for start in range(0, len(new_ids), 500):
            chunk = new_ids[start : start + 500]
            query = select(papers_t.c.arxiv_id, papers_t.c.id)
            id_of.update(conn.execute(query.where(papers_t.c.arxiv_id.in_(chunk))).all())
        side += [(id_of[arxiv_id], new[1], new[2]) for arxiv_id, new in ready.items()]
        for r in inserts:
            r["id"] = id_of[r["arxiv_id"]]
            side.append(_side_rows(r))
    if updates:
        conn.execute(
            _UPDATE, [{"row_id": r["id"], **{f"new_{k}": r[k] for k in _SET}} for r in updates]
        )
    changed_lists = [
        r
        for r in updates
        if r["authors"] != originals[r["arxiv_id"]]["authors"]
        or r["categories"] != originals[r["arxiv_id"]]["categories"]
    ]
    side += [_side_rows(r) for r in changed_lists]
    if side:
        _write_side_tables(conn, side, replace=[r["id"] for r in changed_lists])
    return stats


def get_paper(conn: Connection, arxiv_id: str, *, include_hidden: bool = False) -> Row[Any] | None:
    """One paper by arXiv id in any accepted form (version suffix, URL); None if unknown."""
    try:
        canonical, _ = parse_arxiv_id(arxiv_id)
    except ValueError:
        return None
    query = select(papers_t).where(papers_t.c.arxiv_id == canonical)
    if not include_hidden:
        query = query.where(papers_t.c.hidden.is_(False))
    return conn.execute(query).first()


def iter_papers(conn: Connection, batch: int = 1000) -> Iterator[Row[Any]]:
    """Every paper in id order, fetched in keyset-paginated batches (constant memory)."""
    last = 0
    while True:
        rows = conn.execute(
            select(papers_t).where(papers_t.c.id > last).order_by(papers_t.c.id).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


# ---- Featured listings (the front page) --------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A day, ISO week or month of the front page: [start, end] inclusive."""

    kind: str  # "date" | "week" | "month"
    start: dt.date
    end: dt.date

    @property
    def slug(self) -> str:
        if self.kind == "date":
            return self.start.isoformat()
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return self.start.strftime("%Y-%m")

    @property
    def path(self) -> str:
        return f"/papers/{self.kind}/{self.slug}"

    @classmethod
    def containing(cls, kind: str, day: dt.date) -> Period:
        if kind == "date":
            return cls("date", day, day)
        if kind == "week":
            start = day - dt.timedelta(days=day.weekday())
            return cls("week", start, start + dt.timedelta(days=6))
        start = day.replace(day=1)
        next_month = (start + dt.timedelta(days=32)).replace(day=1)
        return cls("month", start, next_month - dt.timedelta(days=1))

    @classmethod
    def parse(cls, kind: str, slug: str) -> Period:
        """'2024-05-27' / '2024-W22' / '2024-05' -> Period; ValueError on nonsense."""
        if kind == "date":
            return cls.containing("date", dt.date.fromisoformat(slug))
        if kind == "week":
            year, _, week = slug.partition("-W")
            return cls.containing("week", dt.date.fromisocalendar(int(year), int(week), 1))
        if kind == "month":
            year, _, month = slug.partition("-")
            if len(year) != 4 or len(month) != 2:
                raise ValueError(slug)
            return cls.containing("month", dt.date(int(year), int(month), 1))
        raise ValueError(kind)


def _visible_featured() -> Any:
    return (papers_t.c.featured_date.is_not(None)) & (papers_t.c.hidden.is_(False))


def latest_featured_date(conn: Connection) -> dt.date | None:
    return conn.execute(
        select(func.max(papers_t.c.featured_date)).where(_visible_featured())
    ).scalar()


# What a card shows: everything but the long texts, so listings stay light at any catalog size.
CARD_COLUMNS = tuple(
    c for c in papers_t.c if c.name not in ("abstract", "comments", "versions", "extra")
)


def featured_in(
    conn: Connection, period: Period, *, limit: int = 100, offset: int = 0
) -> list[Row[Any]]:
    """Papers featured in the period, most upvoted first (ties: newest submission first)."""
    return list(
        conn.execute(
            select(*CARD_COLUMNS)
            .where(_visible_featured(), papers_t.c.featured_date.between(period.start, period.end))
            .order_by(papers_t.c.upvotes.desc(), papers_t.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


def neighbours(conn: Connection, period: Period) -> tuple[Period | None, Period | None]:
    """The previous and next periods that have featured papers (skips weekends and gaps)."""
    before = conn.execute(
        select(func.max(papers_t.c.featured_date)).where(
            _visible_featured(), papers_t.c.featured_date < period.start
        )
    ).scalar()
    after = conn.execute(
        select(func.min(papers_t.c.featured_date)).where(
            _visible_featured(), papers_t.c.featured_date > period.end
        )
    ).scalar()
    return (
        Period.containing(period.kind, before) if before else None,
        Period.containing(period.kind, after) if after else None,
    )


def bibtex(paper: Any) -> str:
    """A BibTeX @misc entry in arXiv's own style (eprint, archivePrefix, primaryClass)."""
    first = (paper.authors[0].split()[-1] if paper.authors else "anon").lower()
    first = "".join(c for c in name_key(first) if c.isalnum()) or "anon"
    year = paper.published.year if paper.published else ""
    word = next((w.lower() for w in paper.title.split() if len(w) > 3 and w.isalpha()), "paper")
    fields_ = {
        "title": paper.title,
        "author": " and ".join(paper.authors),
        "year": str(year),
        "eprint": paper.arxiv_id,
        "archivePrefix": "arXiv",
        "primaryClass": paper.primary_category or "",
        "url": f"https://arxiv.org/abs/{paper.arxiv_id}",
        "doi": paper.doi or "",
    }
    body = ",\n".join(
        f"  {k} = {{{v.replace('{', '').replace('}', '')}}}" for k, v in fields_.items() if v
    )
    return f"@misc{{{first}{year}{word},\n{body}\n}}"


def cards_by_ids(conn: Connection, paper_ids: list[int]) -> dict[int, Row[Any]]:
    """Card rows of visible papers by id (search results show the same cards as listings)."""
    if not paper_ids:
        return {}
    query = select(*CARD_COLUMNS).where(papers_t.c.id.in_(paper_ids), papers_t.c.hidden.is_(False))
    return {r.id: r for r in conn.execute(query)}
