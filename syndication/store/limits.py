"""Rate limits kept in the store, so that every process of a site counts against the same
limits and a restart forgets nothing: a sliding log of hits per key (``rate_hits``).

Keys are opaque (the caller hashes what they name, with a key of its own); each key
has one window. Read-then-write is race-free under the store's write lock, so two
processes never both take the last hit.

Functions take a ``Connection`` already inside a transaction; they neither commit nor catch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select

from syndication.types import RateLimit

from .schema import rate_hits

MAX_KEY = 100
MIN_WAIT = timedelta(seconds=1)


def take(
    connection: Connection, limits: Sequence[RateLimit], *, now: datetime
) -> tuple[RateLimit, timedelta] | None:
    """Count one hit under every limit, or none when one of them is reached: then that
    limit and how long until it allows one more (at least a second).

    Raises:
        ValueError: a limit below 1, or a key longer than ``MAX_KEY``.
    """
    for limit in limits:
        if limit.limit < 1 or not 0 < len(limit.key) <= MAX_KEY:
            raise ValueError(f"not a usable rate limit: {limit!r}")
    for limit in limits:
        start = now - limit.window
        connection.execute(delete(rate_hits).where(rate_hits.c.key == limit.key, rate_hits.c.at <= start))
        in_window = (rate_hits.c.key == limit.key, rate_hits.c.at > start)
        count = int(connection.scalar(select(func.count()).where(*in_window)) or 0)
        if count >= limit.limit:
            # Room comes when the hit that put the count at the limit leaves the window
            # (the oldest, unless the limit was lowered since).
            leaving = connection.scalar(
                select(rate_hits.c.at)
                .where(*in_window)
                .order_by(rate_hits.c.at, rate_hits.c.id)
                .offset(count - limit.limit)
                .limit(1)
            )
            assert leaving is not None
            return limit, max(leaving + limit.window - now, MIN_WAIT)
    if limits:
        connection.execute(insert(rate_hits), [{"key": limit.key, "at": now} for limit in limits])
    return None


def prune(connection: Connection, *, before: datetime) -> int:
    """Forget hits made before ``before`` (older than any window); how many."""
    return int(connection.execute(delete(rate_hits).where(rate_hits.c.at < before)).rowcount or 0)
