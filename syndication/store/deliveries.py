"""Queries about digest issues and the outbox: one delivery row per message, from
pending to sent or failed, with leases so that a crashed sender's work is taken up again.

The life of a delivery::

    pending --claim--> sending --mark_sent--> sent
                         |  \\--mark_failed--> failed
                         |   \\--mark_retry--> retrying --(next_attempt <= now) claim--> sending
                         \\--(lease_until < now) claim--> sending        (a crashed sender's row)

Only the sender that holds a row's lease may finish it (``lease_owner``), so a
sender that stalled past its lease cannot overwrite what the next one did. A
row whose subscriber was removed, unsubscribed or bounced after the issue was
built is not sent: claiming marks it failed instead, with the reason.

An issue is one run of a digest, unique by ``(digest, scheduled_for)``; making
one is ``INSERT ... ON CONFLICT DO NOTHING`` and then reading it, so two
processes starting the same run get the same row.

Functions take a ``Connection`` already inside a transaction (``Store`` opens it,
holds the write lock and translates errors); they neither commit nor catch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Update, bindparam, case, func, select, update

from syndication.types import Delivery, DeliveryStatus, DigestIssue

from .schema import DELIVERY_STATUSES, deliveries, digest_archive, digest_issues, subscribers
from .subscribers import normalise_address
from .util import chunks, insert_ignoring_conflicts, is_id, name_order

NO_ORGANISATION = "(không thuộc tổ chức)"
"""How ``issue_report`` names the addresses that belong to no organisation."""
_ANALYZE_AFTER = 1000
"""Rows added at once after which ``add_deliveries`` refreshes PostgreSQL's statistics."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """Deliveries one sender holds leases on."""

    owner: str
    """The sender's ``lease_owner`` (``host:pid:tag``)."""
    count: int
    until: datetime
    """When the last of these leases runs out (unless the sender renews them)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDelivery:
    """A message to put in the outbox for one subscriber of an issue."""

    subscriber_id: int
    address: str
    organisation: str | None
    """The subscriber's organisation's name now: kept with the delivery for reports."""
    message_id: str
    """The ``Message-ID`` (derived from issue and subscriber), sent again unchanged on every retry."""
    window_start: datetime
    window_end: datetime
    """The message holds the articles first seen in ``(window_start, window_end]``."""
    first_window: bool = False
    """The subscriber's first message of the digest (``digest.select.takes`` bounds it)."""


# --- issues ------------------------------------------------------------------------


def _issue(row: Any) -> DigestIssue:
    return DigestIssue(
        id=row.id,
        digest=row.digest,
        scheduled_for=row.scheduled_for,
        created=row.created,
        planned=row.planned,
        catch_up=row.catch_up,
    )


def create_issue(
    connection: Connection, digest: str, scheduled_for: datetime, *, now: datetime, catch_up: bool = False
) -> tuple[DigestIssue, bool]:
    """The issue of ``digest`` for ``scheduled_for``, made now (True) or found (False, as it
    was made: ``catch_up`` counts only for a new issue)."""
    statement = (
        insert_ignoring_conflicts(connection, digest_issues, ["digest", "scheduled_for"])
        .values(digest=digest, scheduled_for=scheduled_for, created=now, catch_up=catch_up)
        .returning(digest_issues.c.id)
    )
    # RETURNING gives a row only when this statement inserted one.
    created = connection.execute(statement).first() is not None
    query = select(digest_issues).where(
        digest_issues.c.digest == digest, digest_issues.c.scheduled_for == scheduled_for
    )
    return _issue(connection.execute(query).one()), created


def find_issue(connection: Connection, digest: str, scheduled_for: datetime) -> DigestIssue | None:
    query = select(digest_issues).where(
        digest_issues.c.digest == digest, digest_issues.c.scheduled_for == scheduled_for
    )
    row = connection.execute(query).first()
    return None if row is None else _issue(row)


def mark_planned(connection: Connection, issue_id: int, *, now: datetime) -> None:
    connection.execute(update(digest_issues).where(digest_issues.c.id == issue_id).values(planned=now))


def get_issue(connection: Connection, issue_id: int) -> DigestIssue | None:
    if not is_id(issue_id):
        return None
    row = connection.execute(select(digest_issues).where(digest_issues.c.id == issue_id)).first()
    return None if row is None else _issue(row)


def list_issues(connection: Connection, digest: str, *, limit: int) -> list[DigestIssue]:
    """The newest ``limit`` issues of ``digest``, newest (scheduled_for) first."""
    query = (
        select(digest_issues)
        .where(digest_issues.c.digest == digest)
        .order_by(digest_issues.c.scheduled_for.desc(), digest_issues.c.id.desc())
        .limit(max(limit, 0))
    )
    return [_issue(row) for row in connection.execute(query)]


# --- building the outbox -------------------------------------------------------------


def last_windows(connection: Connection, digest: str, subscriber_ids: Sequence[int]) -> dict[int, datetime]:
    """For each subscriber, the end of the window of its latest sent delivery of ``digest``."""
    found: dict[int, datetime] = {}
    joined = deliveries.join(digest_issues, deliveries.c.issue_id == digest_issues.c.id)
    for part in chunks(sorted(set(subscriber_ids))):
        query = (
            select(deliveries.c.subscriber_id, func.max(deliveries.c.window_end))
            .select_from(joined)
            .where(
                digest_issues.c.digest == digest,
                deliveries.c.status == "sent",
                deliveries.c.subscriber_id.in_(part),
            )
            .group_by(deliveries.c.subscriber_id)
        )
        found.update((subscriber_id, end) for subscriber_id, end in connection.execute(query))
    return found


def add_deliveries(
    connection: Connection, issue_id: int, items: Sequence[NewDelivery], *, now: datetime
) -> int:
    """Put pending deliveries in the outbox; rows for an (issue, address) already there are
    left untouched. How many were added."""
    rows = [
        {
            "issue_id": issue_id,
            "subscriber_id": item.subscriber_id,
            "address": normalise_address(item.address),
            "organisation": item.organisation,
            "status": "pending",
            "message_id": item.message_id,
            "attempts": 0,
            "window_start": item.window_start,
            "window_end": item.window_end,
            "first_window": item.first_window,
            "created": now,
            "updated": now,
        }
        for item in items
    ]
    if not rows:
        return 0
    # A plain executemany (psycopg pipelines it) is several times faster than INSERT ...
    # RETURNING here, and under the write lock counting before and after is exact.
    count = select(func.count()).where(deliveries.c.issue_id == issue_id)
    before = int(connection.scalar(count) or 0)
    connection.execute(insert_ignoring_conflicts(connection, deliveries, ["issue_id", "address"]), rows)
    added = int(connection.scalar(count) or 0) - before
    if added >= _ANALYZE_AFTER and connection.dialect.name == "postgresql":
        # Until autovacuum gets to them, PostgreSQL plans claims as if the new rows were not
        # there and sorts every due row per claim; with statistics it reads just the next few.
        connection.exec_driver_sql("ANALYZE deliveries")
    return added


# --- sending ---------------------------------------------------------------------------

_COLUMNS = (
    deliveries.c.id,
    deliveries.c.issue_id,
    deliveries.c.subscriber_id,
    deliveries.c.address,
    deliveries.c.status,
    deliveries.c.message_id,
    deliveries.c.attempts,
    deliveries.c.next_attempt,
    deliveries.c.window_start,
    deliveries.c.window_end,
    deliveries.c.first_window,
    deliveries.c.last_error,
    deliveries.c.sent_at,
)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        issue_id=row.issue_id,
        subscriber_id=row.subscriber_id,
        address=row.address,
        status=cast(DeliveryStatus, row.status),
        message_id=row.message_id,
        attempts=row.attempts,
        next_attempt=row.next_attempt,
        window_start=row.window_start,
        window_end=row.window_end,
        first_window=row.first_window,
        last_error=row.last_error,
        sent_at=row.sent_at,
    )


def claim_deliveries(
    connection: Connection,
    *,
    issue_id: int | None,
    limit: int,
    lease: timedelta,
    owner: str,
    now: datetime,
) -> list[Delivery]:
    """Lease up to ``limit`` deliveries that are due, oldest first; see ``Store.claim_deliveries``."""
    d = deliveries.c
    # One query per way of being due, each read in id order from ix_deliveries_status_id
    # and stopped at the limit: a claim costs the same in a large outbox as in a small one.
    # (One query with OR sorts every due row each time.)
    kinds = [
        [d.status == "pending"],
        [d.status == "retrying", d.next_attempt <= now],
        [d.status == "sending", d.lease_until < now],
    ]
    if issue_id is not None:
        kinds = [[*conditions, d.issue_id == issue_id] for conditions in kinds]
    joined = deliveries.outerjoin(subscribers, d.subscriber_id == subscribers.c.id)
    claimed: list[Delivery] = []
    while len(claimed) < limit:
        candidates: list[tuple[int, str | None]] = []
        for conditions in kinds:
            query = (
                select(d.id, subscribers.c.status)
                .select_from(joined)
                .where(*conditions)
                .order_by(d.id)
                .limit(limit - len(claimed))
            )
            if connection.dialect.name == "postgresql":
                # Redundant under the store's write lock; what keeps two senders apart without it.
                query = query.with_for_update(skip_locked=True, of=deliveries)
            candidates.extend((id, status) for id, status in connection.execute(query))
        if not candidates:
            break
        candidates = sorted(candidates)[: limit - len(claimed)]
        removed = [id for id, status in candidates if status is None]
        inactive = [id for id, status in candidates if status not in (None, "active")]
        for ids, reason in ((removed, "subscriber removed"), (inactive, "subscriber no longer active")):
            if ids:
                connection.execute(
                    update(deliveries)
                    .where(d.id.in_(ids))
                    .values(status="failed", last_error=f"not sent: {reason}", lease_until=None, updated=now)
                )
        wanted = [id for id, status in candidates if status == "active"]
        if wanted:
            statement = (
                update(deliveries)
                .where(d.id.in_(wanted))
                .values(
                    status="sending",
                    lease_until=now + lease,
                    lease_owner=owner,
                    attempts=d.attempts + 1,
                    updated=now,
                )
                .returning(*_COLUMNS)
            )
            claimed.extend(_delivery(row) for row in connection.execute(statement))
    return sorted(claimed, key=lambda delivery: delivery.id)


def _finish_statement(columns: tuple[str, ...]) -> Update:
    """``UPDATE`` of ``columns`` (bound by name) on the rows in ``ids`` still leased by
    ``owner``; the lease ends. Built once per set of columns: a sender marks rows
    thousands of times an issue, and building the statement cost more than running it."""
    d = deliveries.c
    return (
        update(deliveries)
        .where(
            d.id.in_(bindparam("ids", expanding=True)),
            d.status == "sending",
            d.lease_owner == bindparam("owner"),
        )
        .values({**{column: bindparam(f"new_{column}") for column in columns}, "lease_until": None})
    )


_FINISH_STATEMENTS: dict[tuple[str, ...], Update] = {}


def _finish(connection: Connection, ids: Sequence[int], owner: str, values: dict[str, Any]) -> int:
    """Apply ``values`` to the rows still leased by ``owner``; how many."""
    columns = tuple(values)
    statement = _FINISH_STATEMENTS.get(columns)
    if statement is None:
        statement = _FINISH_STATEMENTS[columns] = _finish_statement(columns)
    bound = {f"new_{column}": value for column, value in values.items()}
    finished = 0
    for part in chunks(sorted(set(ids))):
        finished += connection.execute(statement, {"ids": list(part), "owner": owner, **bound}).rowcount
    return finished


def mark_sent(connection: Connection, ids: Sequence[int], *, owner: str, now: datetime) -> int:
    return _finish(connection, ids, owner, {"status": "sent", "sent_at": now, "updated": now})


def mark_retry(
    connection: Connection, id: int, *, owner: str, error: str, next_attempt: datetime, now: datetime
) -> bool:
    values = {"status": "retrying", "next_attempt": next_attempt, "last_error": error, "updated": now}
    return _finish(connection, [id], owner, values) == 1


def mark_failed(connection: Connection, id: int, *, owner: str, error: str, now: datetime) -> bool:
    return _finish(connection, [id], owner, {"status": "failed", "last_error": error, "updated": now}) == 1


def renew_leases(connection: Connection, ids: Sequence[int], *, owner: str, until: datetime) -> int:
    """Extend to ``until`` the leases ``owner`` still holds on ``ids``; how many."""
    d = deliveries.c
    statement = (
        update(deliveries)
        .where(d.id.in_(bindparam("ids", expanding=True)), d.status == "sending", d.lease_owner == owner)
        .values(lease_until=until)
    )
    renewed = 0
    for part in chunks(sorted(set(ids))):
        renewed += connection.execute(statement, {"ids": list(part)}).rowcount
    return renewed


def release(connection: Connection, ids: Sequence[int], *, owner: str, now: datetime) -> int:
    """Give back rows ``owner`` claimed but did not try (a stop): they are due again at once,
    as they were before the claim (``pending`` if never tried, else ``retrying``)."""
    d = deliveries.c
    # Values computed from each row, so not the prepared statements of ``_finish``.
    statement = (
        update(deliveries)
        .where(d.id.in_(bindparam("ids", expanding=True)), d.status == "sending", d.lease_owner == owner)
        .values(
            status=case((d.attempts > 1, "retrying"), else_="pending"),
            attempts=d.attempts - 1,
            next_attempt=case((d.attempts > 1, now), else_=None),
            updated=now,
            lease_until=None,
        )
    )
    released = 0
    for part in chunks(sorted(set(ids))):
        released += connection.execute(statement, {"ids": list(part)}).rowcount
    return released


def claims(connection: Connection, *, issue_id: int | None, now: datetime) -> list[Claim]:
    """Who holds leases on deliveries (of one issue, or of all) that have not run out."""
    d = deliveries.c
    query = (
        select(d.lease_owner, func.count(), func.max(d.lease_until))
        .where(d.status == "sending", d.lease_until >= now)
        .group_by(d.lease_owner)
        .order_by(d.lease_owner)
    )
    if issue_id is not None:
        query = query.where(d.issue_id == issue_id)
    return [
        Claim(owner=owner or "", count=int(count), until=until)
        for owner, count, until in connection.execute(query)
    ]


def take_over(connection: Connection, *, owner: str, issue_id: int | None, now: datetime) -> int:
    """Make the rows ``owner`` holds due again now (``retrying``), whatever their lease:
    for a sender known to be gone. Each keeps its attempts and Message-ID (one it had
    in flight may go out twice, as after a lease runs out). How many."""
    d = deliveries.c
    statement = (
        update(deliveries)
        .where(d.status == "sending", d.lease_owner == owner)
        .values(status="retrying", next_attempt=now, lease_until=None, lease_owner=None, updated=now)
    )
    if issue_id is not None:
        statement = statement.where(d.issue_id == issue_id)
    return int(connection.execute(statement).rowcount or 0)


def next_due(connection: Connection, *, now: datetime) -> datetime | None:
    """When a delivery next falls due: ``now`` if one is due already, else the earliest
    retry or lease end; None when the outbox has nothing left to send."""
    d = deliveries.c
    if connection.scalar(select(d.id).where(d.status == "pending").limit(1)) is not None:
        return now
    retry = connection.scalar(select(func.min(d.next_attempt)).where(d.status == "retrying"))
    lease = connection.scalar(select(func.min(d.lease_until)).where(d.status == "sending"))
    times = [t for t in (retry, lease) if t is not None]
    return max(min(times), now) if times else None


def supersede(connection: Connection, *, digest: str, before_issue: int, now: datetime) -> int:
    """Mark ``superseded`` the deliveries of earlier issues of ``digest`` that are waiting
    for a retry or were never tried: a newer issue reaches back to each subscriber's last
    delivered digest, so it carries their articles (nothing failed). Rows being sent
    (``sending``) are left to finish."""
    earlier = select(digest_issues.c.id).where(
        digest_issues.c.digest == digest, digest_issues.c.id < before_issue
    )
    result = connection.execute(
        update(deliveries)
        .where(deliveries.c.issue_id.in_(earlier), deliveries.c.status.in_(("pending", "retrying")))
        .values(status="superseded", last_error=f"superseded by issue {before_issue}", updated=now)
    )
    return int(result.rowcount or 0)


def save_archive(connection: Connection, issue_id: int, key: str, html: str, now: datetime) -> None:
    statement = insert_ignoring_conflicts(connection, digest_archive, ["issue_id", "key"])
    connection.execute(statement.values(issue_id=issue_id, key=key, html=html, created=now))


def get_archive(connection: Connection, issue_id: int, key: str) -> str | None:
    if not is_id(issue_id):
        return None
    query = select(digest_archive.c.html).where(
        digest_archive.c.issue_id == issue_id, digest_archive.c.key == key
    )
    return connection.execute(query).scalar_one_or_none()


# --- reports ---------------------------------------------------------------------------


def delivery_counts(connection: Connection, issue_id: int) -> dict[str, int]:
    """Deliveries of the issue per status, every status present (0 when none)."""
    counts = dict.fromkeys(DELIVERY_STATUSES, 0)
    query = (
        select(deliveries.c.status, func.count())
        .where(deliveries.c.issue_id == issue_id)
        .group_by(deliveries.c.status)
    )
    counts.update((status, int(count)) for status, count in connection.execute(query))
    return counts


def issue_report(connection: Connection, issue_id: int) -> list[tuple[str, int, int, int, int]]:
    """``(organisation, sent, failed, superseded, other)`` per organisation of the issue's
    deliveries; the four counts add up to its deliveries."""
    status = deliveries.c.status
    query = (
        select(
            deliveries.c.organisation,
            func.sum(case((status == "sent", 1), else_=0)),
            func.sum(case((status == "failed", 1), else_=0)),
            func.sum(case((status == "superseded", 1), else_=0)),
            func.count(),
        )
        .where(deliveries.c.issue_id == issue_id)
        .group_by(deliveries.c.organisation)
    )
    rows = list(connection.execute(query))
    # Sorted here, not by the database: collations differ between backends and locales.
    rows.sort(key=lambda row: (row[0] is None, name_order(row[0] or "")))
    return [
        (
            name or NO_ORGANISATION,
            int(sent),
            int(failed),
            int(superseded),
            int(total) - int(sent) - int(failed) - int(superseded),
        )
        for name, sent, failed, superseded, total in rows
    ]


def get_deliveries(connection: Connection, issue_id: int) -> list[Delivery]:
    """Every delivery of the issue, in the order they were added."""
    query = select(*_COLUMNS).where(deliveries.c.issue_id == issue_id).order_by(deliveries.c.id)
    return [_delivery(row) for row in connection.execute(query)]
