import datetime as dt

import pytest

from paperfeed import db, papers
from paperfeed.sources import PaperRecord


def rec(arxiv_id="2405.15738", **kw) -> PaperRecord:
    base = {
        "title": "A title",
        "source": "test",
        "abstract": "Abstract.",
        "authors": ["Ada Lovelace"],
    }
    base.update(kw)
    return PaperRecord(arxiv_id=arxiv_id, **base)


def upsert(engine, *records):
    with db.transaction(engine) as conn:
        return papers.upsert_records(conn, list(records))


def get(engine, arxiv_id):
    with db.read(engine) as conn:
        return papers.get_paper(conn, arxiv_id)


def test_insert_then_rerun_changes_nothing(engine):
    r = rec(categories=["cs.CL", "cs.LG"], version=1)
    assert upsert(engine, r) == papers.UpsertStats(new=1)
    assert upsert(engine, r) == papers.UpsertStats(unchanged=1)
    p = get(engine, "arXiv:2405.15738v1")
    assert p.primary_category == "cs.CL"
    assert p.authors == ["Ada Lovelace"]


def test_newer_version_updates_older_never_overwrites(engine):
    upsert(engine, rec(version=2, title="Second"))
    assert upsert(engine, rec(version=1, title="First")) == papers.UpsertStats(unchanged=1)
    assert get(engine, "2405.15738").title == "Second"
    assert upsert(engine, rec(version=3, title="Third")) == papers.UpsertStats(updated=1)
    p = get(engine, "2405.15738")
    assert (p.title, p.version) == ("Third", 3)


def test_older_version_fills_gaps(engine):
    upsert(engine, rec(version=2, doi=None))
    upsert(engine, rec(version=1, doi="10.1/x"))
    assert get(engine, "2405.15738").doi == "10.1/x"


def test_unversioned_source_does_not_clobber_arxiv_metadata(engine):
    upsert(engine, rec(version=2, title="arXiv title"))
    upsert(engine, rec(title="HF title", upvotes=12, featured_date=dt.date(2024, 5, 27)))
    p = get(engine, "2405.15738")
    assert p.title == "arXiv title"
    assert (p.upvotes, p.featured_date) == (12, dt.date(2024, 5, 27))


def test_code_url_found_in_abstract(engine):
    upsert(engine, rec(abstract="Code is available at https://github.com/org/repo."))
    assert get(engine, "2405.15738").code_url == "https://github.com/org/repo"


def test_duplicates_within_one_batch_merge(engine):
    stats = upsert(engine, rec(version=1, title="v1"), rec(version=2, title="v2"))
    assert stats == papers.UpsertStats(new=1)
    assert get(engine, "2405.15738").title == "v2"


def test_unknown_or_invalid_ids_give_none(engine):
    assert get(engine, "9999.99999") is None
    assert get(engine, "not an id") is None


@pytest.mark.parametrize(
    ("kind", "slug", "start", "end"),
    [
        ("date", "2024-05-27", "2024-05-27", "2024-05-27"),
        ("week", "2024-W22", "2024-05-27", "2024-06-02"),
        ("month", "2024-02", "2024-02-01", "2024-02-29"),
    ],
)
def test_period_parse(kind, slug, start, end):
    p = papers.Period.parse(kind, slug)
    assert (p.start.isoformat(), p.end.isoformat(), p.slug) == (start, end, slug)


def test_listing_ranks_by_upvotes_and_neighbours_skip_empty_days(engine):
    fri, mon, tue = dt.date(2024, 5, 24), dt.date(2024, 5, 27), dt.date(2024, 5, 28)
    upsert(
        engine,
        rec("2405.00001", upvotes=3, featured_date=mon),
        rec("2405.00002", upvotes=9, featured_date=mon),
        rec("2405.00003", upvotes=1, featured_date=fri),
        rec("2405.00004", upvotes=1, featured_date=tue),
    )
    with db.read(engine) as conn:
        day = papers.Period.containing("date", mon)
        assert [p.arxiv_id for p in papers.featured_in(conn, day)] == ["2405.00002", "2405.00001"]
        prev, nxt = papers.neighbours(conn, day)
        assert (prev.start, nxt.start) == (fri, tue)
        assert papers.latest_featured_date(conn) == tue


def test_author_and_category_rows_follow_changes(engine):
    from sqlalchemy import text

    upsert(engine, rec(version=1, authors=["José Núñez", "B. Smith"], categories=["cs.CL"]))
    upsert(engine, rec(version=2, authors=["B. Smith"], categories=["cs.LG", "cs.CL"]))
    with db.read(engine) as conn:
        keys = conn.execute(text("SELECT name_key FROM paper_authors ORDER BY position")).scalars()
        cats = conn.execute(
            text("SELECT category FROM paper_categories ORDER BY category")
        ).scalars()
        assert list(keys) == ["b. smith"]
        assert list(cats) == ["cs.CL", "cs.LG"]
    assert papers.name_key("José  Núñez") == "jose nunez"
