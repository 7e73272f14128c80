"""Several processes ingesting the same papers at once: no errors, no duplicates (both engines)."""

import threading

from sqlalchemy import text

from paperfeed import db, papers
from paperfeed.sources import PaperRecord

WRITERS = 4
ROUNDS = 5


def test_concurrent_upserts_of_the_same_new_papers(settings, engine, tmp_path):
    url = settings.database_url
    if url == "sqlite://":  # separate connections need a file
        url = f"sqlite:///{tmp_path / 'concurrent.db'}"
        db.upgrade(db.make_engine(url))
    errors: list[BaseException] = []
    barrier = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        eng = db.make_engine(url)  # its own pool, like another process
        try:
            for r in range(ROUNDS):
                batch = [
                    PaperRecord(
                        arxiv_id=f"2401.{r * 100 + i:05d}",
                        title=f"Paper {i} from {n}",
                        source=f"w{n}",
                        version=1,
                        authors=["Ada Lovelace"],
                        categories=["cs.CL"],
                    )
                    for i in range(50)
                ]
                barrier.wait()
                with db.transaction(eng) as conn:
                    papers.upsert_records(conn, batch)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            eng.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check = db.make_engine(url)
    with db.read(check) as conn:
        assert conn.execute(text("SELECT count(*) FROM papers")).scalar() == ROUNDS * 50
        assert conn.execute(text("SELECT count(*) FROM paper_authors")).scalar() == ROUNDS * 50
    check.dispose()
