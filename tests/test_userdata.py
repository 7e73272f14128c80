"""User-data export/import: lossless round trip (SQLite -> the test database), idempotent, safe."""

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from paperfeed import db, papers, userdata
from paperfeed.cli import app as cli
from paperfeed.models import (
    ApiToken,
    Collection,
    CollectionItem,
    Comment,
    DigestPaper,
    Feedback,
    Follow,
    Paper,
    SavedSearch,
    Subscriber,
    User,
    Vote,
    table_of,
)
from paperfeed.sources import PaperRecord

T = dt.datetime(2024, 5, 27, 9, 30, 15, 123456)


def ins(conn, model, **values):
    t = table_of(model)
    stmt = t.insert().values(**values)
    if "id" in t.c:
        return conn.execute(stmt.returning(t.c.id)).scalar_one()
    conn.execute(stmt)
    return None


def populate(engine):
    """A small community: two users, votes, a comment thread, collections, subscriptions."""
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn,
            [
                PaperRecord(
                    arxiv_id=f"2405.0000{i}",
                    title=f"Paper {i}",
                    source="test",
                    abstract=f"Abstract {i} with $x^2$.",
                    authors=["Ada Lovelace", "Émile Borel"],
                    categories=["cs.CL", "cs.LG"],
                    version=2,
                    published=dt.date(2024, 5, 20),
                    upvotes=10,
                )
                for i in range(1, 5)
            ],
        )
        pid = dict(conn.execute(select(table_of(Paper).c.arxiv_id, table_of(Paper).c.id)).all())
        ada = ins(
            conn,
            User,
            username="ada",
            email="ada@example.org",
            password_hash="$argon2id$v=19$m=65536,t=3,p=4$abc$def",
            email_verified_at=T,
            is_admin=True,
            votes_public=False,
            failed_logins=0,
            created_at=T,
        )
        bob = ins(
            conn,
            User,
            username="bob",
            email="bob@example.org",
            password_hash="$argon2id$bob",
            is_admin=False,
            votes_public=True,
            failed_logins=0,
            created_at=T,
        )
        for u, p in [(ada, "2405.00001"), (ada, "2405.00002"), (bob, "2405.00001")]:
            ins(conn, Vote, user_id=u, paper_id=pid[p], created_at=T)
        ins(conn, Follow, user_id=ada, kind="author", value="emile borel", created_at=T)
        ins(conn, Follow, user_id=ada, kind="category", value="cs.CL", created_at=T)
        col = ins(
            conn,
            Collection,
            user_id=ada,
            name="Reading list",
            slug="reading-list",
            description="d",
            is_public=True,
            created_at=T,
        )
        for p in ("2405.00003", "2405.00001"):
            ins(conn, CollectionItem, collection_id=col, paper_id=pid[p], added_at=T)
        ins(
            conn, Collection, user_id=bob, name="Empty", slug="empty", is_public=False, created_at=T
        )
        ins(conn, ApiToken, user_id=bob, name="cli", token_hash="h" * 64, created_at=T)
        root = ins(
            conn,
            Comment,
            paper_id=pid["2405.00001"],
            user_id=ada,
            body_md="Nice **result**",
            body_html="<p>Nice <strong>result</strong></p>",
            created_at=T,
            hidden=False,
        )
        ins(
            conn,
            Comment,
            paper_id=pid["2405.00001"],
            user_id=bob,
            parent_id=root,
            body_md="Agreed",
            body_html="<p>Agreed</p>",
            created_at=T + dt.timedelta(minutes=1),
            hidden=False,
        )
        ins(
            conn,
            Comment,
            paper_id=pid["2405.00002"],
            user_id=bob,
            body_md="gone",
            body_html="<p>gone</p>",
            created_at=T,
            deleted_at=T + dt.timedelta(hours=1),
            hidden=False,
        )
        conn.execute(
            table_of(Paper)
            .update()
            .where(table_of(Paper).c.id == pid["2405.00004"])
            .values(submitted_by_id=bob)
        )
        sub = ins(
            conn,
            Subscriber,
            email="ada@example.org",
            user_id=ada,
            status="confirmed",
            frequency="weekly",
            delivery_hour=7,
            timezone="Europe/Paris",
            sections=["trending"],
            bounce_count=0,
            confirmed_at=T,
            created_at=T,
        )
        anon = ins(
            conn,
            Subscriber,
            email="reader@example.net",
            status="pending",
            frequency="daily",
            delivery_hour=8,
            timezone="UTC",
            sections=["trending", "for_you"],
            bounce_count=1,
            created_at=T,
        )
        ins(
            conn,
            SavedSearch,
            subscriber_id=sub,
            user_id=ada,
            query="speculative decoding",
            created_at=T,
        )
        ins(conn, SavedSearch, subscriber_id=anon, query='"state space" -vision', created_at=T)
        ins(conn, SavedSearch, user_id=bob, query="author:borel", created_at=T)
        ins(conn, DigestPaper, subscriber_id=sub, paper_id=pid["2405.00003"], edition="2024-05-27")
        ins(conn, Feedback, subscriber_id=anon, paper_id=pid["2405.00002"], signal=-1, created_at=T)
        # The stored counts the community layer keeps: source + local.
        conn.execute(
            text(
                "UPDATE papers SET upvotes = source_upvotes + 2, num_comments = 1 "
                "WHERE arxiv_id = '2405.00001'"
            )
        )
        conn.execute(
            text("UPDATE papers SET upvotes = source_upvotes + 1 WHERE arxiv_id = '2405.00002'")
        )


def export(engine):
    with db.read(engine) as conn:
        doc = userdata.export_all(conn)
    doc.pop("exported_at")
    return json.loads(json.dumps(doc))  # exactly what goes through a file


def import_(engine, doc):
    with db.transaction(engine) as conn:
        return userdata.import_all(conn, doc)


@pytest.fixture
def source():
    eng = db.make_engine("sqlite://")  # always SQLite: the PostgreSQL pass makes this SQLite -> PG
    db.upgrade(eng)
    populate(eng)
    yield eng
    eng.dispose()


def counts(engine):
    with db.read(engine) as conn:
        return {
            m.__tablename__: conn.execute(select(func.count()).select_from(table_of(m))).scalar()
            for m in (
                User,
                Vote,
                Follow,
                Collection,
                CollectionItem,
                ApiToken,
                Comment,
                Subscriber,
                SavedSearch,
                DigestPaper,
                Feedback,
                Paper,
            )
        }


def test_round_trip_is_lossless_and_import_is_idempotent(source, engine):
    doc = export(source)
    assert {u["username"] for u in doc["users"]} == {"ada", "bob"}
    stats = import_(engine, doc)  # into an empty catalog: the papers come from the document
    assert stats.conflicts == []
    assert stats.created["papers"] == 4 and stats.created["users"] == 2
    assert export(engine) == doc
    assert counts(engine) == counts(source)
    again = import_(engine, doc)
    assert again.created == {} and again.conflicts == []
    assert counts(engine) == counts(source)


def test_imported_data_keeps_threads_counts_and_logins(source, engine):
    import_(engine, export(source))
    with db.read(engine) as conn:
        c = table_of(Comment)
        reply = conn.execute(select(c).where(c.c.body_md == "Agreed")).one()
        parent = conn.execute(select(c).where(c.c.id == reply.parent_id)).one()
        assert parent.body_md == "Nice **result**"
        assert parent.created_at == T  # microseconds survive: they are part of the natural key
        p1 = papers.get_paper(conn, "2405.00001")
        assert (p1.upvotes, p1.num_comments) == (12, 2)  # 10 from the source + local
        p2 = papers.get_paper(conn, "2405.00002")
        assert (p2.upvotes, p2.num_comments) == (11, 0)  # a deleted comment is not counted
        assert papers.get_paper(conn, "2405.00004").submitted_by_id is not None
        u = table_of(User)
        ada = conn.execute(select(u).where(u.c.username == "ada")).one()
        assert ada.password_hash.startswith("$argon2id$") and ada.is_admin and not ada.votes_public


def test_import_into_a_live_instance_keeps_local_data_and_reports_clashes(source, engine):
    populate_target = export(source)
    with db.transaction(engine) as conn:
        papers.upsert_records(
            conn, [PaperRecord(arxiv_id="2405.00001", title="Local title", source="t")]
        )
        ins(
            conn,
            User,
            username="ada",
            email="other@example.org",
            password_hash="x",
            is_admin=False,
            votes_public=True,
            failed_logins=0,
            created_at=T,
        )
    stats = import_(engine, populate_target)
    assert len(stats.conflicts) == 1 and "'ada'" in stats.conflicts[0]
    assert stats.created["users"] == 1  # bob
    with db.read(engine) as conn:
        assert papers.get_paper(conn, "2405.00001").title == "Local title"  # never overwritten
        u = table_of(User)
        assert (
            conn.execute(select(u.c.email).where(u.c.username == "ada")).scalar()
            == "other@example.org"
        )
        # Ada's comment was skipped, so Bob's reply is kept as a top-level comment.
        c = table_of(Comment)
        assert conn.execute(select(c.c.parent_id).where(c.c.body_md == "Agreed")).scalar() is None


def test_foreign_document_is_refused(engine):
    with pytest.raises(userdata.FormatError):
        import_(engine, {"format": "something-else", "version": 1})


def test_cli_export_import_round_trip(source, engine, settings, tmp_path):
    src_file = tmp_path / "src.db"
    with db.read(source) as conn:
        raw = conn.connection.driver_connection
        import sqlite3

        raw.backup(sqlite3.connect(src_file))
    dump = tmp_path / "users.json"
    r = CliRunner().invoke(
        cli, ["export", "users", str(dump)], env={"PAPERFEED_DATABASE_URL": f"sqlite:///{src_file}"}
    )
    assert r.exit_code == 0, r.output
    target_url = settings.database_url
    if target_url == "sqlite://":
        target_url = f"sqlite:///{tmp_path / 'target.db'}"
        db.upgrade(db.make_engine(target_url))
    r = CliRunner().invoke(
        cli, ["import", "users", str(dump)], env={"PAPERFEED_DATABASE_URL": target_url}
    )
    assert r.exit_code == 0, r.output
    assert "2 users" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"users": [')
    r = CliRunner().invoke(
        cli, ["import", "users", str(bad)], env={"PAPERFEED_DATABASE_URL": target_url}
    )
    assert r.exit_code == 1 and "nothing was changed" in r.output
