"""Derive the bundled demo sample (src/paperfeed/data/demo.jsonl) from the shared HF daily papers.

The last WEEKS ISO weeks of front pages, the TOP_PER_DAY most upvoted papers of each day, in
paperfeed's JSONL format unchanged (source: ../shared/data/hf_daily_papers.jsonl, Apache-2.0
repository of Hugging Face /api/daily_papers output; see shared/data/SOURCES.md).

    python scripts/make_demo_sample.py [SOURCE] [TARGET]
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "hf_daily_papers.jsonl"
TARGET = ROOT / "src" / "paperfeed" / "data" / "demo.jsonl"
WEEKS = 4  # enough for week/month navigation, previous/next links across weekends
TOP_PER_DAY = 25  # keeps the package small (< 1.5 MB) while every day looks full
MAX_BYTES = 1_500_000


def main(source: Path = SOURCE, target: Path = TARGET) -> None:
    rows = [json.loads(line) for line in source.open(encoding="utf-8")]
    last = max(dt.date.fromisoformat(r["featured_date"]) for r in rows)
    first = last - dt.timedelta(days=last.weekday()) - dt.timedelta(weeks=WEEKS - 1)
    by_day: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if dt.date.fromisoformat(r["featured_date"]) >= first:
            by_day[r["featured_date"]].append(r)
    keep = {
        r["arxiv_id"]
        for day in by_day.values()
        for r in sorted(day, key=lambda r: -r["upvotes"])[:TOP_PER_DAY]
    }
    out = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows if r["arxiv_id"] in keep)
    size = len(out.encode("utf-8"))
    if size > MAX_BYTES:
        sys.exit(f"demo sample would be {size} bytes (> {MAX_BYTES}); lower TOP_PER_DAY")
    target.write_text(out, encoding="utf-8")
    print(
        f"{len(keep)} papers, {len(by_day)} days from {first} to {last}, {size} bytes -> {target}"
    )


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:3]))
