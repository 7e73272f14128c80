"""Fixed-window rate limits counted in the `rate_limits` table (shared by all workers)."""

from __future__ import annotations

import time

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite

from paperfeed.models import RateLimit, table_of

limits_t = table_of(RateLimit)


def hit(conn: Connection, key: str, limit: int, window_s: int, *, now: float | None = None) -> bool:
    """Count one event for `key` in the current window; False once more than `limit` happened."""
    now_s = int(now if now is not None else time.time())
    start = now_s - now_s % window_s
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(limits_t).values(key=key[:300], window_start=start, count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[limits_t.c.key, limits_t.c.window_start],
        set_={"count": limits_t.c.count + 1},
    ).returning(limits_t.c.count)
    count = conn.execute(stmt).scalar_one()
    if count == 1:  # first event of a new window: drop this key's finished windows
        conn.execute(
            delete(limits_t).where(limits_t.c.key == key[:300], limits_t.c.window_start < start)
        )
    return bool(count <= limit)


def purge(conn: Connection, older_than_s: int = 2 * 86400) -> int:
    """Delete windows that started more than `older_than_s` ago; returns rows removed."""
    cutoff = int(time.time()) - older_than_s
    return conn.execute(delete(limits_t).where(limits_t.c.window_start < cutoff)).rowcount
