"""The search box language, parsed by us into a safe structure (no engine syntax reaches an engine).

words            ranked by relevance (any word may match; more and rarer matches rank higher)
"a phrase"       must appear as written (unbalanced quotes run to the end of the query)
-word  -"a b"    must not appear
author:hinton  author:"geoffrey hinton"   cat:cs.CL  cat:cs   has:code
year:2024  year:2023..2024  year:2023-2024  after:2024-05  before:2024-06-01
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

MAX_QUERY_CHARS = 1000  # longer input is cut here: no real query is longer, and cost grows with it
MAX_CLAUSES = 32  # words + phrases + filters kept; the rest are ignored with a notice

# One clause: optional '-', optional 'field:', then a quoted run (closing quote optional) or a word.
_CLAUSE = re.compile(
    r'(?P<neg>-)?(?:(?P<field>[A-Za-z]+):)?(?:"(?P<quoted>[^"]*)"?|(?P<word>[^\s"]+))'
)
_YEAR_RANGE = re.compile(r"^(?P<lo>\d{4})?\s*(?:\.\.|-|–)\s*(?P<hi>\d{4})?$")
_DATE = re.compile(r"^(?P<y>\d{4})(?:-(?P<m>\d{1,2})(?:-(?P<d>\d{1,2}))?)?$")
FIELD_ALIASES = {
    "author": "author",
    "au": "author",
    "cat": "cat",
    "category": "cat",
    "year": "year",
    "after": "after",
    "since": "after",
    "before": "before",
    "has": "has",
}


@dataclass
class ParsedQuery:
    """What the user asked for. Dates are inclusive bounds on `published`."""

    raw: str = ""
    terms: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    has_code: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The free text (words and phrases) that relevance ranking and embeddings use."""
        return " ".join([*self.terms, *self.phrases]).strip()

    @property
    def has_filters(self) -> bool:
        return bool(
            self.authors or self.categories or self.date_from or self.date_to or self.has_code
        )

    @property
    def is_empty(self) -> bool:
        return not (self.text or self.has_filters)


def fold(text: str) -> str:
    """Lowercase and strip accents ('Ménard' -> 'menard'), as author `name_key`s are stored."""
    if text.isascii():  # nothing to decompose (most text): 20x faster, same result
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def fold_table() -> tuple[str, str]:
    """fold()'s accent stripping for Latin letters as a translate() table (for SQL, case kept).

    Migration 0005_search_fold carries a frozen copy; tests/test_search_pg.py checks they agree.
    """
    src, dst = [], []
    for cp in [*range(0xC0, 0x250), *range(0x1E00, 0x1F00)]:
        c = chr(cp)
        decomposed = unicodedata.normalize("NFKD", c)
        base = "".join(x for x in decomposed if not unicodedata.combining(x))
        if decomposed != c and len(base) == 1 and base.isascii() and base.isalpha():
            src.append(c)
            dst.append(base)
    return "".join(src), "".join(dst)


def title_key(text: str) -> str:
    """Normalised title for exact-title matching: folded, punctuation to spaces, collapsed."""
    return " ".join(re.sub(r"[^\w]+", " ", fold(text)).split())


def _parse_date(value: str, end: bool) -> dt.date | None:
    """'2024', '2024-05', '2024-05-17' -> first (end=False) or last (end=True) day covered."""
    m = _DATE.match(value)
    if not m:
        return None
    year, month, day = int(m["y"]), int(m["m"] or 0), int(m["d"] or 0)
    try:
        if day:
            return dt.date(year, month, day)
        if month:
            first = dt.date(year, month, 1)
            if not end:
                return first
            nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
            return nxt - dt.timedelta(days=1)
        return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
    except ValueError:
        return None


def _narrow(q: ParsedQuery, lo: dt.date | None, hi: dt.date | None) -> None:
    if lo and (q.date_from is None or lo > q.date_from):
        q.date_from = lo
    if hi and (q.date_to is None or hi < q.date_to):
        q.date_to = hi


def _apply_filter(q: ParsedQuery, name: str, value: str, raw: str) -> None:
    value = value.strip()
    if name == "author" and value:
        q.authors.append(value)
    elif name == "cat" and value:
        q.categories.append(value.lower())
    elif name == "has" and value.lower() == "code":
        q.has_code = True
    elif name == "year":
        m = _YEAR_RANGE.match(value)
        if value.isdigit() and len(value) == 4:
            _narrow(q, _parse_date(value, False), _parse_date(value, True))
        elif m and (m["lo"] or m["hi"]):
            lo = _parse_date(m["lo"], False) if m["lo"] else None
            hi = _parse_date(m["hi"], True) if m["hi"] else None
            _narrow(q, lo, hi)
        else:
            q.notices.append(f"Ignored {raw!r}: use year:2024 or year:2023..2024.")
    elif name in ("after", "before"):
        day = _parse_date(value, end=False)
        if day is None:
            q.notices.append(f"Ignored {raw!r}: use a date like 2024, 2024-05 or 2024-05-17.")
        elif name == "after":
            _narrow(q, day, None)
        else:
            _narrow(q, None, day - dt.timedelta(days=1))
    else:
        q.notices.append(f"Ignored {raw!r}: unknown or empty filter.")


def parse_query(raw: str) -> ParsedQuery:
    """Parse anything a user can type; never raises."""
    raw = raw or ""
    # Drop control characters (NUL, escapes) and unpaired surrogates; keep every script and emoji.
    cleaned = "".join(
        " " if unicodedata.category(c) in ("Cc", "Cs") else c for c in raw[: MAX_QUERY_CHARS * 4]
    )
    q = ParsedQuery(raw=cleaned.strip())
    if len(cleaned) > MAX_QUERY_CHARS:
        cleaned = cleaned[:MAX_QUERY_CHARS]
        q.notices.append(f"Only the first {MAX_QUERY_CHARS} characters of the query were used.")
    clauses = 0
    for m in _CLAUSE.finditer(cleaned):
        neg, fname = bool(m["neg"]), (m["field"] or "").lower()
        value = m["quoted"] if m["quoted"] is not None else (m["word"] or "")
        quoted = m["quoted"] is not None
        if not value.strip() and not fname:
            continue
        clauses += 1
        if clauses > MAX_CLAUSES:
            q.notices.append(f"Only the first {MAX_CLAUSES} words and filters were used.")
            break
        if fname in FIELD_ALIASES and value.strip():
            if neg:
                q.notices.append(f"Ignored {m.group(0)!r}: filters cannot be negated.")
            else:
                _apply_filter(q, FIELD_ALIASES[fname], value, m.group(0))
            continue
        if fname:  # 'ConvLLaVA: Hierarchical' — an ordinary word followed by a colon
            value = f"{m['field']} {value}".strip()
        if not re.search(r"\w", value):
            continue  # punctuation alone carries nothing to search for
        if neg:
            q.excludes.append(value.strip())
        elif quoted:
            q.phrases.append(value.strip())
        else:
            q.terms.append(value)
    if q.date_from and q.date_to and q.date_from > q.date_to:
        q.notices.append("The date filters exclude each other: nothing can match.")
    return q
