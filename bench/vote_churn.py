"""What upvotes cost PostgreSQL keyword search, over a bench/load.py catalog.

Usage:
  python bench/vote_churn.py --db postgresql+psycopg://postgres@127.0.0.1:PORT/pfbench
  python bench/vote_churn.py --db URL --pending-list-kb 4096   # PostgreSQL's default, to compare

Every vote writes a new version of its papers row (count and hotness, votes.set_vote), and on
PostgreSQL a new row version adds all of its search vectors' words to the GIN indexes' pending
lists, which every keyword search reads until they are merged into the index (migration 0012
keeps them short). After a VACUUM (empty lists), this casts --votes votes through
votes.set_vote, in --steps rounds (one transaction each, as the web's upvote requests, on the
papers load.py's users vote on) and, before the first round and after each, times the keyword
side of load.py's queries: search(mode="keyword"), one at a time over one connection. Prints
ms per search after each round, and the mean and slowest vote of each round (the
vote that finds a pending list full merges it into the index). --pending-list-kb sets the
indexes' limit for the run and puts migration 0012's back at the end.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, select, text

sys.path.insert(0, str(Path(__file__).parent))
from load import make_queries
from paperfeed import db, votes
from paperfeed.config import Settings
from paperfeed.models import Paper, User
from paperfeed.search import search

GIN_INDEXES = ("ix_papers_search_tsv", "ix_papers_rank_tsv")
MIGRATION_KB = 128  # migration 0012


def set_pending_list(engine: Engine, kb: int) -> None:
    with db.transaction(engine) as conn:
        for name in GIN_INDEXES:
            conn.execute(text(f"ALTER INDEX {name} SET (gin_pending_list_limit = {int(kb)})"))


def keyword_ms(engine: Engine, settings: Settings, queries: list[str]) -> float:
    with db.read(engine) as conn:
        for q in queries[:10]:  # plans, caches
            search(conn, settings, q, limit=20, mode="keyword")
        t0 = time.perf_counter()
        for q in queries:
            search(conn, settings, q, limit=20, mode="keyword")
        return (time.perf_counter() - t0) / len(queries) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, help="SQLAlchemy URL of a bench/load.py catalog")
    ap.add_argument("--votes", type=int, default=3600, help="in all (load.py: ~10 a second)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--pending-list-kb", type=int, default=MIGRATION_KB)
    args = ap.parse_args()
    if not args.db.startswith("postgresql"):
        raise SystemExit("PostgreSQL only: SQLite's keyword index is tantivy's, outside the rows")
    engine = db.make_engine(args.db)
    settings = Settings(database_url=args.db)
    queries = make_queries(200, seed=5)
    rng = random.Random(1)
    with db.read(engine) as conn:
        papers = list(conn.execute(select(Paper.id).order_by(Paper.id).limit(5000)).scalars())
        users = list(conn.execute(select(User.id).limit(100)).scalars())
    if not users:
        raise SystemExit("no accounts: run bench/load.py on this database first")
    set_pending_list(engine, args.pending_list_kb)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM papers"))
        print(
            f"GIN pending lists {args.pending_list_kb} kB, {len(queries)} keyword searches "
            f"per measurement, {args.votes} votes in {args.steps} rounds"
        )
        print(f"  after VACUUM: {keyword_ms(engine, settings, queries):5.1f} ms per search")
        per_step, cast = args.votes // args.steps, 0
        for _ in range(args.steps):
            took = []
            for _ in range(per_step):
                t0 = time.perf_counter()
                with db.transaction(engine) as conn:
                    votes.set_vote(conn, rng.choice(users), rng.choice(papers), None)
                took.append((time.perf_counter() - t0) * 1000)
            cast += per_step
            ms = keyword_ms(engine, settings, queries)
            print(
                f"  after {cast:5d} votes: {ms:5.1f} ms per search "
                f"(votes: mean {sum(took) / len(took):.2f} ms, slowest {max(took):.0f} ms)"
            )
    finally:
        set_pending_list(engine, MIGRATION_KB)


if __name__ == "__main__":
    main()
