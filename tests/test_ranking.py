import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from paperfeed import db, papers, ranking
from paperfeed.config import Settings
from paperfeed.models import Paper
from paperfeed.sources import PaperRecord

W = ranking.Weights()
counts = st.integers(min_value=0, max_value=10**7)
stars = st.none() | counts
growth = st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False)
moments = st.datetimes(min_value=dt.datetime(1991, 1, 1), max_value=dt.datetime(2100, 1, 1))


def hot(upvotes=0, comments=0, code_stars=None, growth=None, anchor=dt.datetime(2024, 5, 27)):
    return ranking.breakdown(
        upvotes=upvotes,
        num_comments=comments,
        code_stars=code_stars,
        stars_growth=growth,
        anchor=anchor,
        weights=W,
    )


@given(counts, counts, counts, stars, growth, moments)
def test_more_votes_never_lowers_the_score(votes, more, comments, code, grow, anchor):
    assert hot(votes + more, comments, code, grow, anchor).hotness >= (
        hot(votes, comments, code, grow, anchor).hotness
    )


@given(counts, counts, counts, stars, growth, moments)
def test_more_comments_or_stars_never_lower_the_score(votes, comments, more, code, grow, anchor):
    base = hot(votes, comments, code, grow, anchor).hotness
    assert hot(votes, comments + more, code, grow, anchor).hotness >= base
    assert hot(votes, comments, (code or 0) + more, grow, anchor).hotness >= base


@given(counts, counts, stars, growth, moments, st.timedeltas(min_value=dt.timedelta(0)))
def test_older_never_raises_the_score(votes, comments, code, grow, anchor, older_by):
    try:
        earlier = anchor - older_by
    except OverflowError:
        return
    if earlier.year < 1970:
        return
    assert hot(votes, comments, code, grow, earlier).hotness <= (
        hot(votes, comments, code, grow, anchor).hotness
    )


@given(counts, moments, st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=9999)))
def test_score_only_falls_as_the_clock_moves(votes, anchor, later_by):
    b = hot(votes, anchor=anchor)
    assert b.score_at(anchor + later_by) <= b.score_at(anchor)
    assert b.age_penalty(anchor + later_by) >= 0


def test_breakdown_matches_documented_formula():
    b = hot(99, 9, 999, 9.0, dt.datetime(2024, 5, 27))
    assert b.votes == pytest.approx(2.0)  # log10(100) * 1.0
    assert b.comments == pytest.approx(0.5)  # log10(10) * 0.5
    assert b.code == pytest.approx(0.25 * 3 + 0.5 * 1)
    day_points = (dt.datetime(2024, 5, 27) - dt.datetime(1970, 1, 1)).days
    assert b.hotness == pytest.approx(2.0 + 0.5 + 1.25 + day_points)
    # A day of age costs one point by default: a paper with 10x the votes one day older ties.
    newer = hot(9, anchor=dt.datetime(2024, 5, 28))
    assert hot(99, anchor=dt.datetime(2024, 5, 27)).hotness == pytest.approx(newer.hotness)
    assert hot(199, anchor=dt.datetime(2024, 5, 27)).hotness > newer.hotness


def test_star_growth_from_history():
    extra = {
        "code_stars_history": [
            {"date": "2024-05-01", "stars": 0},
            {"date": "2024-05-20", "stars": 100},
            {"date": "2024-05-30", "stars": 300},
        ]
    }
    assert ranking.stars_per_day(extra) == pytest.approx(300 / 29)
    assert ranking.stars_per_day({"code_stars_history": [{"date": "2024-05-01"}]}) is None
    assert ranking.stars_per_day({}) is None


def test_weights_come_from_settings():
    s = Settings(database_url="sqlite://", trending_gravity_s=3600, trending_vote_weight=2)
    w = ranking.Weights.from_settings(s)
    assert (w.gravity_s, w.vote) == (3600, 2)


def _rec(arxiv_id, upvotes=0, day=dt.date(2024, 5, 27), title=None, **kw):
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title or f"Paper {arxiv_id}",
        source="test",
        upvotes=upvotes,
        featured_date=day,
        **kw,
    )


def _hotness(conn, arxiv_id):
    return conn.execute(select(Paper.hotness).where(Paper.arxiv_id == arxiv_id)).scalar()


def test_upsert_keeps_hotness_in_step_and_refresh_follows_votes(engine):
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, [_rec("2405.00001", upvotes=9)])
        first = _hotness(conn, "2405.00001")
        assert first == pytest.approx(
            1.0 + (dt.datetime(2024, 5, 27) - dt.datetime(1970, 1, 1)).days
        )
        papers.upsert_records(conn, [_rec("2405.00001", upvotes=99)])
        second = _hotness(conn, "2405.00001")
        assert second == pytest.approx(first + 1.0)
        # A local vote (the community module's write) followed by refresh_hotness:
        pid = conn.execute(select(Paper.id).where(Paper.arxiv_id == "2405.00001")).scalar()
        conn.execute(update(Paper).where(Paper.id == pid).values(upvotes=999))
        assert ranking.refresh_hotness(conn, [pid]) == 1
        assert _hotness(conn, "2405.00001") == pytest.approx(second + 1.0)
        assert ranking.refresh_hotness(conn, [pid]) == 0  # idempotent


def test_rescore_applies_and_records_new_weights(engine):
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, [_rec("2405.00001", upvotes=9)])
        before = _hotness(conn, "2405.00001")
        heavy = ranking.Weights(vote=3.0)
        assert ranking.rescore(conn, heavy) == 1
        assert _hotness(conn, "2405.00001") == pytest.approx(before + 2.0)
        assert ranking.active_weights(conn) == heavy
        assert ranking.rescore(conn, heavy) == 0


def test_windows_are_counted_back_from_latest_featured_day(engine):
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn,
            [
                _rec("2405.00001", 5, dt.date(2024, 5, 27)),
                _rec("2405.00002", 50000, dt.date(2024, 5, 24)),
                _rec("2405.00003", 5000, dt.date(2024, 4, 1)),
                PaperRecord(arxiv_id="2405.00004", title="Never featured", source="t", upvotes=9),
            ],
        )
        ids = {w: [r.arxiv_id for r in ranking.trending(conn, w)[0]] for w in ranking.WINDOWS}
    assert ids["day"] == ["2405.00001"]
    assert ids["week"] == ["2405.00002", "2405.00001"]  # 10^3.9x the votes beat 3 days
    assert ids["month"] == ids["week"]
    assert ids["all"] == ["2405.00002", "2405.00001", "2405.00003"]
    with pytest.raises(ValueError, match="window"):
        ranking.trending(conn, "year")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.permutations(range(8)), st.integers(min_value=1, max_value=5))
def test_ties_are_ordered_deterministically_and_pages_tile(engine, order, page_size):
    recs = [_rec(f"2405.{i:05d}", upvotes=7 if i % 2 else 70) for i in order]
    with db.transaction(engine) as conn:
        conn.execute(Paper.__table__.delete())
        papers.upsert_records(conn, recs)
        whole, _ = ranking.trending(conn, "all", limit=100)
        paged, cursor = [], None
        while True:
            rows, cursor = ranking.trending(conn, "all", limit=page_size, cursor=cursor)
            paged += rows
            if cursor is None:
                break
    ids = [r.arxiv_id for r in whole]
    expected = sorted((r.arxiv_id for r in recs if r.upvotes == 70), reverse=True) + sorted(
        (r.arxiv_id for r in recs if r.upvotes == 7), reverse=True
    )
    assert ids == expected  # independent of insertion order
    assert [r.arxiv_id for r in paged] == ids


def test_cursor_is_stable_under_inserts_and_rejects_foreign_cursors(engine):
    with db.transaction(engine) as conn:
        papers.upsert_records(conn, [_rec(f"2405.{i:05d}", upvotes=i) for i in range(1, 7)])
        first, cursor = ranking.trending(conn, "all", limit=3)
        papers.upsert_records(conn, [_rec("2405.09999", upvotes=10**6)])  # lands on page one
        second, _ = ranking.trending(conn, "all", limit=3, cursor=cursor)
        assert [r.arxiv_id for r in first + second] == [f"2405.{i:05d}" for i in range(6, 0, -1)]
        with pytest.raises(ranking.BadCursor):
            ranking.trending(conn, "day", cursor=cursor)
        with pytest.raises(ranking.BadCursor):
            ranking.trending(conn, "all", cursor="not-a-cursor!")


def test_trending_page_explains_each_card(client, engine):
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn,
            [
                _rec(
                    "2405.00001",
                    upvotes=99,
                    num_comments=9,
                    code_url="https://github.com/a/b",
                    code_stars=999,
                    title="<i>Hot</i> paper",
                ),
                _rec("2405.00002", upvotes=1),
            ],
        )
    r = client.get("/papers/trending", params={"window": "all"})
    assert r.status_code == 200
    html = r.text
    assert html.index("Hot") < html.index("Paper 2405.00002")
    assert "&lt;i&gt;Hot&lt;/i&gt;" in html and "<i>Hot</i>" not in html
    assert html.count('<details class="why">') == 2
    assert "+2.00" in html and "+0.50" in html and "+0.75" in html  # votes, comments, code
    assert client.get("/papers/trending", params={"cursor": "bogus"}).status_code == 400
