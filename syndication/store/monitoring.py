"""Queries for watching the service run: a liveness ping and totals over every issue.

Functions take a ``Connection`` already inside a transaction (``Store`` opens it
and translates errors); they neither commit nor catch. Read-only.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from .schema import DELIVERY_STATUSES, deliveries


def ping(connection: Connection) -> None:
    """A query that touches no table: the database answers, nothing more."""
    connection.execute(select(1)).scalar_one()


def delivery_counts(connection: Connection) -> dict[str, int]:
    """Deliveries of every issue per status, every status present (0 when none)."""
    counts = dict.fromkeys(DELIVERY_STATUSES, 0)
    query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
    counts.update((status, int(count)) for status, count in connection.execute(query))
    return counts
