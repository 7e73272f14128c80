"""Keyword retrieval behind a small interface; tantivy (BM25, on disk) is the implementation.

The PostgreSQL tsvector backend (search/pg.py) implements `KeywordBackend` with the same input.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import shutil
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import tantivy

from paperfeed.search.query import ParsedQuery, fold, title_key

# BM25 runs over one "text" field (title + abstract, one length norm, as in BEIR's BM25
# baseline) plus the title again at TITLE_BOOST, so a title word weighs 1.25x an abstract word.
# Tuned on the SciFact *train* split (809 queries, nDCG@10): separate title^2 + abstract fields
# 0.624; one text field 0.702; text + title^0.25 0.704 (a one-off tantivy script over the
# split, not kept; bench/search_quality.py measures the result).
TEXT_BOOST = 1.0
TITLE_BOOST = 0.25
AUTHORS_BOOST = 1.5  # a name in the author list is a strong signal
FUZZY_BOOST = 0.5  # a guessed spelling counts half as much as a word the user typed right
FUZZY_MIN_CHARS = 5  # shorter words have too many neighbours within one edit
# Typo expansion only in queries of at most this many words: there a mistyped word is a big part
# of what was asked, while in a long query the guessed spelling's constant 0.5 is noise next to
# the other words' BM25 (and the semantic side reads misspellings anyway). It is also the costly
# part: a fuzzy term walks every segment's term dictionary, ~5-10 ms per unknown word at 1M
# papers (the slowest SciFact claims in bench/search_latency.py had 2-5 unknown words).
FUZZY_MAX_WORDS = 4
CLAUSE_CACHE = 64  # queries whose ranking clauses a backend keeps (see TantivyBackend._words)
# The fields a query word is looked up in, with their analyzer and weight.
WORD_FIELDS = (
    ("text", "pf_en", TEXT_BOOST),
    ("title", "pf_en", TITLE_BOOST),
    ("authors", "pf_name", AUTHORS_BOOST),
)
# Dense words ('the', 'of', 'in': in most documents) are where a long query's keyword time goes
# (their postings are the longest: at 1M papers, terms in over 10% of the documents are ~80% of
# a SciFact claim's BM25 time) and they decide the least: a term adds at most
# boost * idf * (K1 + 1) to a score, and idf is ~0 for them. Such terms are left out of the
# query, densest first, while the bounds of the left-out ones sum to at most DENSE_SHARE of the
# bounds of all its terms, so a two-word query keeps both words. Tuned on SciFact *train* (README
# ## Search, "Keyword query at 1M").
K1 = 1.2  # tantivy's BM25 k1
DENSE_DF = 0.1  # a term in more than this share of the documents is dense
DENSE_SHARE = 0.05  # the most of a query's summed term bounds that dense terms may carry
SCHEMA_VERSION = 2  # bump when fields or analyzers change: the index is rebuilt
# Bulk loads (paperfeed index on a fresh index or a large backlog): one writer for the run.
# 256 MB of indexing heap per thread makes segments of ~100k papers (fewer merges); measured
# in bench/search_latency.py (README ## Search).
BULK_HEAP_PER_THREAD = 256_000_000  # bytes


@dataclass
class KeywordDoc:
    """What the keyword index knows about a paper."""

    paper_id: int
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]
    published: dt.date | None
    has_code: bool


@dataclass
class KeywordResult:
    hits: list[tuple[int, float]]  # (paper_id, score) best first
    total: int  # hits returned; `limit` of them means "at least this many" (no full count)


class KeywordBackend(Protocol):
    """What search needs from a keyword engine."""

    def search(self, q: ParsedQuery, limit: int) -> KeywordResult: ...

    def filter_ids(self, q: ParsedQuery, paper_ids: Sequence[int]) -> set[int]: ...

    def scores(self, q: ParsedQuery, paper_ids: Sequence[int]) -> dict[int, float]: ...

    def title_matches(self, text: str) -> list[int]: ...

    def analyze(self, text: str) -> list[str]: ...

    def upsert(self, docs: Iterable[KeywordDoc]) -> int: ...

    def delete(self, paper_ids: Iterable[int]) -> None: ...

    def count(self) -> int: ...

    def clear(self) -> None: ...


def analyzers() -> dict[str, tantivy.TextAnalyzer]:
    base = tantivy.Tokenizer.simple()
    return {
        # English text: split on non-alphanumerics, fold accents, Porter-style stemming.
        "pf_en": tantivy.TextAnalyzerBuilder(base)
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build(),
        # Names: no stemming ('Hinton' must not become 'hint').
        "pf_name": tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build(),
    }


@functools.cache
def english_analyzer() -> tantivy.TextAnalyzer:
    """pf_en, the text analyser of both keyword backends (PostgreSQL's highlights use it)."""
    return analyzers()["pf_en"]


@functools.lru_cache(maxsize=1 << 16)
def english_stems(word: str) -> tuple[str, ...]:
    """The pf_en stems of one word, cached for the process (a tuple: shared, so immutable):
    result pages highlight the same abstract words query after query."""
    return tuple(english_analyzer().analyze(word))


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("id", stored=True, indexed=True, fast=True)
    sb.add_text_field("title", tokenizer_name="pf_en")
    sb.add_text_field("text", tokenizer_name="pf_en")  # title + abstract
    sb.add_text_field("authors", tokenizer_name="pf_name")
    sb.add_text_field("title_key", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("cat", tokenizer_name="raw", index_option="basic")
    sb.add_integer_field("day", indexed=True, fast=True)  # published, as a proleptic ordinal
    sb.add_unsigned_field("has_code", indexed=True)
    return sb.build()


class TantivyBackend:
    """BM25 over title + abstract, title and authors in a tantivy index directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.schema = _schema()
        self.analyzers = analyzers()
        version_file = path / "SCHEMA_VERSION"
        if path.exists() and (
            not version_file.exists() or version_file.read_text().strip() != str(SCHEMA_VERSION)
        ):
            shutil.rmtree(path)  # an index from older code: rebuild (the watermark is reset too)
        fresh = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        self.index = tantivy.Index(self.schema, path=str(path), reuse=True)
        # A query's ranking clauses by its words, for this index generation: search() and
        # scores() of one query (and a repeated query) build them once (doc_freq lookups,
        # analysis, the typo check's dictionary walk).
        self._clauses: OrderedDict[tuple[str, ...], list[tuple[tantivy.Occur, tantivy.Query]]]
        self._clauses = OrderedDict()
        for name, analyzer in self.analyzers.items():
            self.index.register_tokenizer(name, analyzer)
        if fresh:
            version_file.write_text(str(SCHEMA_VERSION))
        self.fresh = fresh

    # -- reading -----------------------------------------------------------------------------

    def reload(self) -> None:
        self.index.reload()
        self._clauses = OrderedDict()  # document frequencies changed

    def analyze(self, text: str) -> list[str]:
        return list(self.analyzers["pf_en"].analyze(text))

    def _words_query(self, field_name: str, analyzer: str, text: str) -> tantivy.Query | None:
        tokens = list(self.analyzers[analyzer].analyze(text))
        if not tokens:
            return None
        if len(tokens) == 1:
            return tantivy.Query.term_query(self.schema, field_name, tokens[0])
        return tantivy.Query.phrase_query(
            self.schema, field_name, list[str | tuple[int, str]](tokens)
        )

    def _any_field(self, text: str, boosts: bool) -> tantivy.Query | None:
        parts = []
        for fname, analyzer, boost in WORD_FIELDS:
            sub = self._words_query(fname, analyzer, text)
            if sub is not None:
                parts.append(tantivy.Query.boost_query(sub, boost) if boosts else sub)
        if not parts:
            return None
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, p) for p in parts])

    def _fuzzy(self, searcher: tantivy.Searcher, word: str) -> tantivy.Query | None:
        """A one- or two-edit match for a long word the index has never seen (a typo)."""
        tokens = self.analyze(word)
        if len(tokens) != 1 or len(tokens[0]) < FUZZY_MIN_CHARS:
            return None
        token = tokens[0]
        if searcher.doc_freq("text", token):
            return None
        distance = 1 if len(token) < 9 else 2
        parts = [
            tantivy.Query.boost_query(
                tantivy.Query.fuzzy_term_query(self.schema, f, token, distance=distance),
                FUZZY_BOOST,
            )
            for f in ("text",)
        ]
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, p) for p in parts])

    def _constraints(self, q: ParsedQuery) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        """Phrases, exclusions and filters: the clauses every result must satisfy."""
        out: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for phrase in q.phrases:
            sub = self._any_field(phrase, boosts=True)
            if sub is not None:
                out.append((tantivy.Occur.Must, sub))
        for text in q.excludes:
            sub = self._any_field(text, boosts=False)
            if sub is not None:
                out.append((tantivy.Occur.MustNot, sub))
        for name in q.authors:
            sub = self._words_query("authors", "pf_name", fold(name))
            out.append((tantivy.Occur.Must, sub or tantivy.Query.empty_query()))
        for cat in q.categories:
            out.append((tantivy.Occur.Must, tantivy.Query.term_query(self.schema, "cat", cat)))
        if q.date_from or q.date_to:
            out.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.range_query(
                        self.schema,
                        "day",
                        tantivy.FieldType.Integer,
                        q.date_from.toordinal() if q.date_from else None,
                        q.date_to.toordinal() if q.date_to else None,
                    ),
                )
            )
        if q.has_code:
            out.append((tantivy.Occur.Must, tantivy.Query.term_query(self.schema, "has_code", 1)))
        return out

    def _words(
        self, searcher: tantivy.Searcher, q: ParsedQuery
    ) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        """The ranking clauses of the query's words: one flat OR of boosted term queries (each
        word in every field; a repeated word's boosts add up), minus the dense terms
        (_drop_dense), plus phrase queries for words that analyse to several tokens and fuzzy
        ones for typos. Flat, a word costs one posting-list walk per field, not a nested OR."""
        key = tuple(q.terms)
        cached = self._clauses.get(key)
        if cached is None:
            cached = self._clauses[key] = self._build_words(searcher, q)
            while len(self._clauses) > CLAUSE_CACHE:
                self._clauses.popitem(last=False)
        return cached

    def _build_words(
        self, searcher: tantivy.Searcher, q: ParsedQuery
    ) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        terms: dict[tuple[str, str], float] = {}  # (field, token) -> summed boost
        other: list[tantivy.Query] = []
        for word in q.terms:
            for fname, analyzer, boost in WORD_FIELDS:
                tokens = list(self.analyzers[analyzer].analyze(word))
                if len(tokens) == 1:
                    terms[(fname, tokens[0])] = terms.get((fname, tokens[0]), 0.0) + boost
                elif tokens:
                    phrase = tantivy.Query.phrase_query(
                        self.schema, fname, list[str | tuple[int, str]](tokens)
                    )
                    other.append(tantivy.Query.boost_query(phrase, boost))
            fuzzy = self._fuzzy(searcher, word) if len(q.terms) <= FUZZY_MAX_WORDS else None
            if fuzzy is not None:
                other.append(fuzzy)
        should = [
            (
                tantivy.Occur.Should,
                tantivy.Query.boost_query(tantivy.Query.term_query(self.schema, f, t), b),
            )
            for (f, t), b in self._drop_dense(searcher, terms).items()
        ]
        return should + [(tantivy.Occur.Should, sub) for sub in other]

    @staticmethod
    def _drop_dense(
        searcher: tantivy.Searcher, terms: dict[tuple[str, str], float]
    ) -> dict[tuple[str, str], float]:
        """`terms` without its densest ones, within DENSE_SHARE of the query's score bound."""
        n = searcher.num_docs
        bounds: list[tuple[int, float, tuple[str, str]]] = []  # (df, max score, term)
        for key, boost in terms.items():
            df = searcher.doc_freq(*key)
            if df:  # an unknown term costs nothing and is kept (it matches nothing)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                bounds.append((df, boost * idf * (K1 + 1), key))
        budget = DENSE_SHARE * sum(ub for _, ub, _ in bounds)
        kept = dict(terms)
        for df, ub, key in sorted(bounds, reverse=True):
            if df <= DENSE_DF * n or ub > budget:
                break
            budget -= ub
            del kept[key]
        return kept

    def search(self, q: ParsedQuery, limit: int) -> KeywordResult:
        searcher = self.index.searcher()
        should = self._words(searcher, q)
        must = self._constraints(q)
        if not should and not any(occ == tantivy.Occur.Must for occ, _ in must):
            if not q.has_filters and not q.excludes:
                return KeywordResult([], 0)
            must.append((tantivy.Occur.Must, tantivy.Query.all_query()))
        if not should and not q.phrases:
            # Filters only: newest first (relevance is meaningless without words).
            query = tantivy.Query.boolean_query(must)
            res = searcher.search(query, limit=limit, order_by_field="day", count=False)
            hits = [(pid, 0.0) for pid in self._ids(searcher, res.hits)]
            return KeywordResult(hits, len(hits))
        query = tantivy.Query.boolean_query(should + must)
        # count=False: no Count collector. (tantivy-py collects through a MultiCollector, which
        # scores every match: no block-max WAND, hence the flat query and _drop_dense.)
        res = searcher.search(query, limit=limit, count=False)
        ids = self._ids(searcher, res.hits)
        hits = [(pid, float(score)) for pid, (score, _) in zip(ids, res.hits, strict=True)]
        return KeywordResult(hits, len(hits))

    @staticmethod
    def _ids(
        searcher: tantivy.Searcher, hits: Sequence[tuple[object, tantivy.DocAddress]]
    ) -> list[int]:
        """Paper ids of search hits, read from the `id` fast field (no stored-document fetch)."""
        if not hits:
            return []
        values = searcher.fast_field_values("id", [addr for _, addr in hits])
        return [int(v) for v in values if v is not None]  # every document has an id

    def _id_set(self, paper_ids: Sequence[int]) -> tantivy.Query:
        """Documents of these papers: one term query per id (a term_set_query scans the whole
        id column: 2.7 ms vs 0.8 ms for 100 ids at 100k papers)."""
        return tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "id", int(i)))
                for i in paper_ids
            ]
        )

    def filter_ids(self, q: ParsedQuery, paper_ids: Sequence[int]) -> set[int]:
        """Those of paper_ids that satisfy the query's phrases, exclusions and filters."""
        must = self._constraints(q)
        if not must or not paper_ids:
            return set(paper_ids)
        searcher = self.index.searcher()
        if self._unknown_author(searcher, q):
            return set()
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, self._id_set(paper_ids)), *must])
        res = searcher.search(query, limit=len(paper_ids), count=False)
        return set(self._ids(searcher, res.hits))

    def _unknown_author(self, searcher: tantivy.Searcher, q: ParsedQuery) -> bool:
        """Whether an `author:` name has a word no author has (then nothing can match: the
        check of "two words that may be a name" costs no id query for most queries)."""
        return any(
            not searcher.doc_freq("authors", token)
            for name in q.authors
            for token in self.analyzers["pf_name"].analyze(fold(name))
        )

    def scores(self, q: ParsedQuery, paper_ids: Sequence[int]) -> dict[int, float]:
        """The BM25 score search() gives each of paper_ids (absent: no word matches), for
        scoring the semantic side's candidates that the keyword top-k did not reach."""
        if not paper_ids:
            return {}
        searcher = self.index.searcher()
        should = self._words(searcher, q)
        if not should:
            return {}
        only = tantivy.Query.const_score_query(self._id_set(paper_ids), 0.0)  # adds no score
        query = tantivy.Query.boolean_query(
            [*should, *self._constraints(q), (tantivy.Occur.Must, only)]
        )
        res = searcher.search(query, limit=len(paper_ids), count=False)
        found = self._ids(searcher, res.hits)
        return {pid: float(score) for pid, (score, _) in zip(found, res.hits, strict=True)}

    def title_matches(self, text: str) -> list[int]:
        key = title_key(text)
        if not key:
            return []
        searcher = self.index.searcher()
        res = searcher.search(tantivy.Query.term_query(self.schema, "title_key", key), limit=5)
        return self._ids(searcher, res.hits)

    def count(self) -> int:
        return int(self.index.searcher().num_docs)

    # -- writing -----------------------------------------------------------------------------

    def _document(self, doc: KeywordDoc) -> tantivy.Document:
        cats: list[str] = []
        for c in doc.categories:
            c = c.lower()
            cats.append(c)
            if "." in c:
                cats.append(c.split(".", 1)[0])  # cat:cs matches every cs.* paper
        d = tantivy.Document()
        d.add_unsigned("id", doc.paper_id)
        d.add_text("title", doc.title)
        d.add_text("text", f"{doc.title}\n{doc.abstract}")
        for name in doc.authors:
            d.add_text("authors", fold(name))
        d.add_text("title_key", title_key(doc.title))
        for cat in sorted(set(cats)):
            d.add_text("cat", cat)
        d.add_unsigned("has_code", int(doc.has_code))
        if doc.published:
            d.add_integer("day", doc.published.toordinal())
        return d

    def _delete_query(self, paper_ids: list[int]) -> tantivy.Query:
        # By query: delete_documents_by_term would build a signed-integer term that never
        # matches the unsigned id field.
        return tantivy.Query.term_set_query(self.schema, "id", paper_ids)

    def upsert(self, docs: Iterable[KeywordDoc]) -> int:
        """Replace these papers' documents; one commit for the batch."""
        batch = list(docs)
        if not batch:
            return 0
        writer = self.index.writer(heap_size=64_000_000, num_threads=1)
        try:
            writer.delete_documents_by_query(self._delete_query([d.paper_id for d in batch]))
            for doc in batch:
                writer.add_document(self._document(doc))
            writer.commit()
            writer.wait_merging_threads()
        except BaseException:
            writer.rollback()
            raise
        self.reload()
        return len(batch)

    def bulk(self, threads: int = 1) -> BulkWriter:
        """One writer for a large load; see BulkWriter. The index is no longer `fresh` once
        the load starts (a retry after a failure must replace, not append)."""
        writer = BulkWriter(self, threads)
        self.fresh = False
        return writer

    def clear(self) -> None:
        """Remove every document (the next sync re-adds the whole catalog)."""
        writer = self.index.writer(heap_size=15_000_000, num_threads=1)
        writer.delete_all_documents()
        writer.commit()
        writer.wait_merging_threads()
        self.reload()
        self.fresh = True

    def delete(self, paper_ids: Iterable[int]) -> None:
        ids = list(paper_ids)
        if not ids:
            return
        writer = self.index.writer(heap_size=15_000_000, num_threads=1)
        writer.delete_documents_by_query(self._delete_query(ids))
        writer.commit()
        writer.wait_merging_threads()
        self.reload()


class BulkWriter:
    """A large keyword load through one tantivy writer: commits only when asked (the caller
    checkpoints its watermark after each), and deletes a paper's old document only when it
    can exist. On an index that was `fresh` when the load began, that is only for a paper
    already written by this load (one modified while the load ran): no delete query per batch."""

    def __init__(self, backend: TantivyBackend, threads: int) -> None:
        self.backend = backend
        self.fresh = backend.fresh
        threads = max(1, threads)
        self.writer = backend.index.writer(
            heap_size=BULK_HEAP_PER_THREAD * threads, num_threads=threads
        )
        self._written = np.zeros(0, dtype=bool)  # by paper id: added during this load

    def _may_exist(self, paper_ids: list[int]) -> list[int]:
        if not self.fresh:
            return paper_ids
        written = self._written
        return [i for i in paper_ids if i < len(written) and written[i]]

    def _mark(self, paper_ids: list[int]) -> None:
        if not self.fresh or not paper_ids:
            return
        top = max(paper_ids)
        if top >= len(self._written):
            grown = np.zeros(max(top + 1, 2 * len(self._written)), dtype=bool)
            grown[: len(self._written)] = self._written
            self._written = grown
        self._written[paper_ids] = True

    def upsert(self, docs: Sequence[KeywordDoc]) -> None:
        """Add (or replace) these papers' documents; visible after the next commit()."""
        ids = [d.paper_id for d in docs]
        self.delete(ids)
        for doc in docs:
            self.writer.add_document(self.backend._document(doc))
        self._mark(ids)

    def delete(self, paper_ids: list[int]) -> None:
        stale = self._may_exist(paper_ids)
        if stale:
            self.writer.delete_documents_by_query(self.backend._delete_query(stale))

    def commit(self) -> None:
        self.writer.commit()

    def close(self, ok: bool = True) -> None:
        """Finish: wait for merges and let readers see the committed documents; `ok=False`
        drops what was not committed."""
        if not ok:
            self.writer.rollback()
        self.writer.wait_merging_threads()
        self.backend.reload()
