"""Compose and deliver one daily edition to N subscribers (default 100,000) into a local SMTP sink.

The sink is aiosmtpd in another process (tests/smtp_sink.py) logging one Message-ID per accepted
message; the sender is `paperfeed digest send` in its own process(es), so the figures include
everything a cron run does: planning, claiming, composing, signing, SMTP, recording.

Prints: messages/s end to end, peak RSS of the sender(s), duplicates and missing from the log.

    python bench/digest.py [--subscribers 100000] [--senders 1]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, text

from paperfeed import db
from paperfeed.models import (
    Embedding,
    Follow,
    Paper,
    PaperAuthor,
    PaperCategory,
    SavedSearch,
    Subscriber,
    User,
    Vote,
)

ROOT = Path(__file__).resolve().parents[1]
EDITION = dt.date(2024, 5, 6)
CATALOG = 5_000  # papers in the catalog (the liked papers come from here)
FEATURED = 40  # papers featured on the edition's day: a busy Hugging Face daily page
DIM = 384  # embedding size of a typical small sentence-transformer
CATEGORIES = ["cs.CL", "cs.LG", "cs.CV", "cs.AI", "stat.ML", "cs.RO", "cs.IR", "eess.AS"]
TOPICS = [
    "speculative decoding",
    "diffusion",
    "reinforcement learning",
    "retrieval augmented",
    "vision transformer",
    "mixture of experts",
    "quantization",
    "instruction tuning",
    "graph neural network",
    "speech recognition",
    "robot manipulation",
    "protein folding",
    "in-context learning",
    "chain of thought",
    "reward model",
    "long context",
]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(url: str, subscribers: int, rng: random.Random) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    nrng = np.random.default_rng(7)
    authors = [f"Author {i}" for i in range(3_000)]
    with db.transaction(engine) as conn:
        papers, pauthors, pcats, vectors = [], [], [], []
        for i in range(CATALOG):
            featured = EDITION if i < FEATURED else EDITION - dt.timedelta(days=1 + i % 300)
            topic = rng.choice(TOPICS)
            names = rng.sample(authors, rng.randint(1, 6))
            cats = rng.sample(CATEGORIES, rng.randint(1, 2))
            papers.append(
                {
                    "id": i + 1,
                    "arxiv_id": f"2405.{i:05d}",
                    "title": f"Advances in {topic} #{i}",
                    "abstract": f"We study {topic}. " + "Lorem ipsum dolor sit amet. " * 30,
                    "authors": names,
                    "categories": cats,
                    "primary_category": cats[0],
                    "featured_date": featured,
                    "upvotes": rng.randint(0, 300),
                }
            )
            pauthors += [
                {"paper_id": i + 1, "position": k, "name": n, "name_key": n.lower()}
                for k, n in enumerate(names)
            ]
            pcats += [{"paper_id": i + 1, "category": c} for c in cats]
            vectors.append(
                {
                    "paper_id": i + 1,
                    "model": "bench",
                    "text_hash": "x",
                    "vector": nrng.standard_normal(DIM).astype(np.float32).tobytes(),
                }
            )
        conn.execute(insert(Paper), papers)
        conn.execute(insert(PaperAuthor), pauthors)
        conn.execute(insert(PaperCategory), pcats)
        conn.execute(insert(Embedding), vectors)

        users = subscribers * 3 // 10  # 30% of subscribers have an account
        conn.execute(
            insert(User),
            [
                {
                    "id": u + 1,
                    "username": f"u{u}",
                    "email": f"u{u}@users.example",
                    "password_hash": "x",
                }
                for u in range(users)
            ],
        )
        follows, votes = [], []
        for u in range(users):
            for key in rng.sample(authors, rng.randint(0, 3)):
                follows.append({"user_id": u + 1, "kind": "author", "value": key.lower()})
            for cat in rng.sample(CATEGORIES, rng.randint(0, 2)):
                follows.append({"user_id": u + 1, "kind": "category", "value": cat})
            for pid in rng.sample(range(FEATURED + 1, CATALOG + 1), rng.randint(0, 8)):
                votes.append({"user_id": u + 1, "paper_id": pid})
        conn.execute(insert(Follow), follows)
        conn.execute(insert(Vote), votes)
        subs, searches = [], []
        for s in range(subscribers):
            subs.append(
                {
                    "id": s + 1,
                    "email": f"reader{s}@example.org",
                    "status": "active",
                    "frequency": "daily",
                    "user_id": s + 1 if s < users else None,
                    "sections": ["trending", "for_you"],
                }
            )
            if rng.random() < 0.25:  # a quarter saved one or two searches
                for q in rng.sample(TOPICS, rng.randint(1, 2)):
                    searches.append({"subscriber_id": s + 1, "query": q})
        conn.execute(insert(Subscriber), subs)
        conn.execute(insert(SavedSearch), searches)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=1, help="parallel `digest send` processes")
    args = parser.parse_args()
    rng = random.Random(42)
    work = Path(tempfile.mkdtemp(prefix="pf-digest-bench-"))
    url = f"sqlite:///{work / 'bench.db'}"
    t0 = time.monotonic()
    populate(url, args.subscribers, rng)
    print(f"populated {args.subscribers} subscribers in {time.monotonic() - t0:.1f}s ({work})")

    port, log = free_port(), work / "sink.log"
    sink = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "smtp_sink.py"),
            "--port",
            str(port),
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    assert sink.stdout.readline().strip() == "ready"
    env = os.environ | {
        "PAPERFEED_DATABASE_URL": url,
        "PAPERFEED_DATA_DIR": str(work / "data"),
        "PAPERFEED_MAIL_BACKEND": "smtp",
        "PAPERFEED_SMTP_HOST": "127.0.0.1",
        "PAPERFEED_SMTP_PORT": str(port),
        "PAPERFEED_SECRET_KEY": "bench",
        "PAPERFEED_BASE_URL": "https://papers.example.org",
    }
    cmd = [
        sys.executable,
        "-c",
        "from paperfeed.cli import main; main()",
        "digest",
        "send",
        "--edition",
        EDITION.isoformat(),
    ]
    start = time.monotonic()
    senders = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(args.senders)
    ]
    outputs = [p.communicate()[0].strip() for p in senders]
    elapsed = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the senders: reaped, sink not yet
    rss_mb = usage.ru_maxrss / 1024  # the largest sender
    sender_cpu = usage.ru_utime + usage.ru_stime
    print(f"senders finished in {elapsed:.1f}s; peak RSS {rss_mb:.0f} MiB", flush=True)
    time.sleep(1.0)  # let the sink flush its log
    sink.send_signal(2)
    try:
        sink.wait(120)  # a loaded machine can take a while to stop the event loop
    except subprocess.TimeoutExpired:
        sink.kill()  # its log is flushed twice a second: nothing accepted is lost
        sink.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    sink_cpu = usage.ru_utime + usage.ru_stime - sender_cpu
    load = os.getloadavg()[0]

    lines = [line.split("\t") for line in log.read_text().splitlines() if line]
    per_rcpt = collections.Counter(r for _, r in lines)
    per_mid = collections.Counter(m for m, _ in lines)
    expected = {f"reader{s}@example.org" for s in range(args.subscribers)}
    duplicates = sum(c - 1 for c in per_rcpt.values() if c > 1) + sum(
        c - 1 for c in per_mid.values() if c > 1
    )
    missing = len(expected - set(per_rcpt))
    with db.read(db.make_engine(url)) as conn:
        statuses = dict(
            conn.execute(text("SELECT status, count(*) FROM digest_sends GROUP BY status")).all()
        )
    for out in outputs:
        print("sender:", out.splitlines()[-1] if out else "(no output)")
    print(f"subscribers:        {args.subscribers}")
    print(f"senders:            {args.senders}")
    print(f"delivered:          {len(lines)} messages in {elapsed:.1f}s")
    print(f"throughput:         {len(lines) / elapsed:.0f} messages/s end to end")
    print(f"peak RSS (sender):  {rss_mb:.0f} MiB (largest sender process)")
    n = max(len(lines), 1)
    per_msg = (sender_cpu + sink_cpu) / n * 1000
    print(
        f"CPU per message:    sender {sender_cpu / n * 1000:.2f} ms, "
        f"sink {sink_cpu / n * 1000:.2f} ms"
    )
    print(f"CPU-bound ceiling:  {2000 / per_msg:.0f} messages/s on 2 otherwise idle cores")
    print(f"load average:       {load:.1f} (machine shared with other work while measuring)")
    print(f"duplicates:         {duplicates}")
    print(f"missing:            {missing}")
    print(f"digest_sends:       {statuses}")
    if duplicates or missing or any(p.returncode for p in senders):
        sys.exit(1)


if __name__ == "__main__":
    main()
