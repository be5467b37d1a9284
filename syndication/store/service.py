"""Queries for the running service: leases on sources, the processes at work, and
the retention clean-up.

Polls are shared out like deliveries: a worker claims the sources that are due
(``next_attempt`` reached, or never polled) and not leased by another worker,
holding each until ``lease_until``; recording the poll's outcome gives it back
(``sources.record_polls``), and a worker that dies holding one loses it when the
lease runs out. On PostgreSQL the claim also takes ``FOR UPDATE SKIP LOCKED``, as
deliveries do, though the store's write lock already serialises writers.

Functions take a ``Connection`` already inside a transaction; they neither commit
nor catch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, func, literal_column, or_, select, type_coerce, update

from syndication.types import NodeInfo

from .schema import (
    UTCDateTime,
    articles,
    deliveries,
    digest_archive,
    digest_issues,
    issue_totals,
    nodes,
    page_validators,
    sources,
)
from .util import chunks, insert_ignoring_conflicts

# --- sources ------------------------------------------------------------------------


def claim_sources(
    connection: Connection,
    ids: Sequence[str],
    *,
    limit: int,
    lease: timedelta,
    owner: str,
    now: datetime,
) -> list[str]:
    """Lease up to ``limit`` of the sources ``ids`` that are due and free, longest due first."""
    if not ids or limit <= 0:
        return []
    s = sources.c
    query = (
        select(s.id)
        .where(
            s.id.in_(ids),
            or_(s.next_attempt.is_(None), s.next_attempt <= now),  # due (or never polled)
            or_(s.lease_until.is_(None), s.lease_until < now),  # free
        )
        .order_by(s.next_attempt.asc().nulls_first(), s.id)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = list(connection.scalars(query))
    if claimed:
        connection.execute(
            update(sources).where(s.id.in_(claimed)).values(lease_until=now + lease, lease_owner=owner)
        )
    return claimed


def release_sources(connection: Connection, *, owner: str, ids: Sequence[str] | None = None) -> int:
    """Give back the leases ``owner`` holds (on ``ids`` only, when given); how many."""
    condition = [sources.c.lease_owner == owner, sources.c.lease_until.is_not(None)]
    if ids is not None:
        condition.append(sources.c.id.in_(ids))
    result = connection.execute(update(sources).where(*condition).values(lease_until=None, lease_owner=None))
    return int(result.rowcount or 0)


def next_poll(connection: Connection, ids: Sequence[str], *, now: datetime) -> datetime | None:
    """When the next of ``ids`` falls due (``now`` if one is due already); None if none is known.

    A leased source counts from the end of its lease (when another worker would take it).
    """
    if not ids:
        return None
    s = sources.c
    leased = s.lease_until.is_not(None) & (s.lease_until > now)
    due = type_coerce(case((leased, s.lease_until), else_=s.next_attempt), UTCDateTime)
    # A never-polled source in its first poll is leased: it counts from its lease end too.
    free_and_new = s.next_attempt.is_(None) & or_(s.lease_until.is_(None), s.lease_until <= now)
    row = connection.execute(
        select(func.count().filter(free_and_new), func.min(due)).where(s.id.in_(ids))
    ).one()
    never_polled, earliest = row
    if never_polled:
        return now
    if earliest is None:
        return None
    return max(earliest, now)


# --- nodes --------------------------------------------------------------------------


def heartbeat(
    connection: Connection,
    *,
    owner: str,
    role: str,
    started: datetime,
    now: datetime,
    forget_before: datetime | None = None,
) -> None:
    """Say that ``owner`` is alive now (and what it does); forget processes silent since
    ``forget_before`` (when given)."""
    if forget_before is not None:
        prune_nodes(connection, before=forget_before)
    updated = connection.execute(
        update(nodes).where(nodes.c.owner == owner).values(role=role, heartbeat=now)
    ).rowcount
    if not updated:
        statement = insert_ignoring_conflicts(connection, nodes, ["owner"])
        connection.execute(statement.values(owner=owner, role=role, started=started, heartbeat=now))


def remove_node(connection: Connection, owner: str) -> None:
    connection.execute(delete(nodes).where(nodes.c.owner == owner))


def list_nodes(connection: Connection) -> list[NodeInfo]:
    rows = connection.execute(select(nodes).order_by(nodes.c.role, nodes.c.owner))
    return [NodeInfo(owner=r.owner, role=r.role, started=r.started, heartbeat=r.heartbeat) for r in rows]


# --- retention ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """What one clean-up deleted."""

    articles: int = 0
    deliveries: int = 0
    issues_summarised: int = 0
    page_validators: int = 0
    nodes: int = 0
    subscribers: int = 0
    """Pending addresses whose opt-in request expired unconfirmed."""
    rate_hits: int = 0


_UNFINISHED = ("pending", "sending", "retrying")


def prune_deliveries(connection: Connection, *, before: datetime) -> tuple[int, int]:
    """Delete the deliveries (and archived pages) of finished issues scheduled before
    ``before``, keeping each issue's per-organisation totals; (deliveries, issues)."""
    unfinished = select(deliveries.c.issue_id).where(deliveries.c.status.in_(_UNFINISHED))
    has_rows = select(deliveries.c.issue_id)
    old = list(
        connection.scalars(
            select(digest_issues.c.id).where(
                digest_issues.c.scheduled_for < before,
                digest_issues.c.id.not_in(unfinished),
                digest_issues.c.id.in_(has_rows),
            )
        )
    )
    removed = 0
    status = deliveries.c.status
    # A literal, not a bound "": PostgreSQL must see the same expression in SELECT and GROUP BY.
    organisation = func.coalesce(deliveries.c.organisation, literal_column("''"))
    for part in chunks(old):
        totals = (
            select(
                deliveries.c.issue_id,
                organisation,
                func.sum(case((status == "sent", 1), else_=0)),
                func.sum(case((status == "failed", 1), else_=0)),
                func.sum(case((status == "superseded", 1), else_=0)),
                func.sum(case((status.in_(("sent", "failed", "superseded")), 0), else_=1)),
            )
            .where(deliveries.c.issue_id.in_(part))
            .group_by(deliveries.c.issue_id, organisation)
        )
        rows = [
            {
                "issue_id": i,
                "organisation": o,
                "sent": int(s),
                "failed": int(f),
                "superseded": int(r),
                "other": int(x),
            }
            for i, o, s, f, r, x in connection.execute(totals)
        ]
        if rows:
            statement = insert_ignoring_conflicts(connection, issue_totals, ["issue_id", "organisation"])
            connection.execute(statement, rows)
        removed += int(connection.execute(delete(deliveries).where(deliveries.c.issue_id.in_(part))).rowcount)
        connection.execute(delete(digest_archive).where(digest_archive.c.issue_id.in_(part)))
    return removed, len(old)


def old_articles(connection: Connection, *, before: datetime) -> tuple[set[int], set[int]]:
    """The articles published and first seen before ``before`` (roots), and those plus
    every duplicate of them (all to delete)."""
    a = articles.c
    old = select(a.id).where(a.published < before, a.first_seen < before, a.duplicate_of.is_(None))
    roots = list(connection.scalars(old))
    doomed: set[int] = set(roots)
    for part in chunks(roots):
        doomed.update(connection.scalars(select(a.id).where(a.duplicate_of.in_(part))))
    # Duplicates that are themselves old go too, whatever their root's age.
    doomed.update(
        connection.scalars(
            select(a.id).where(a.published < before, a.first_seen < before, a.duplicate_of.is_not(None))
        )
    )
    return set(roots), doomed


def delete_articles(connection: Connection, ids: set[int]) -> int:
    count = 0
    for part in chunks(sorted(ids)):
        count += int(connection.execute(delete(articles).where(articles.c.id.in_(part))).rowcount or 0)
    return count


def prune_page_validators(connection: Connection, *, before: datetime) -> int:
    statement = delete(page_validators).where(page_validators.c.checked < before)
    return int(connection.execute(statement).rowcount or 0)


def prune_nodes(connection: Connection, *, before: datetime) -> int:
    return int(connection.execute(delete(nodes).where(nodes.c.heartbeat < before)).rowcount or 0)


def summarised(connection: Connection, issue_id: int) -> list[tuple[str, int, int, int, int]]:
    """The totals kept for an issue whose deliveries were deleted, as ``issue_report``
    gives them: ``(organisation, sent, failed, superseded, other)`` (empty if none)."""
    t = issue_totals.c
    query = select(t.organisation, t.sent, t.failed, t.superseded, t.other).where(t.issue_id == issue_id)
    return [(o, int(s), int(f), int(r), int(x)) for o, s, f, r, x in connection.execute(query)]


__all__ = [
    "Pruned",
    "claim_sources",
    "delete_articles",
    "heartbeat",
    "list_nodes",
    "next_poll",
    "old_articles",
    "prune_deliveries",
    "prune_nodes",
    "prune_page_validators",
    "release_sources",
    "remove_node",
    "summarised",
]
