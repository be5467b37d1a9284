"""The store's methods for the running service (``Store`` inherits them): leases on
sources, the processes at work, the outbox's next due time, the published documents'
dates and pings, and retention (which also expires opt-in requests and forgets old
rate-limit hits).

Kept apart from ``store/__init__.py`` only to keep modules short; the same rules
apply: one transaction per call, the write lock for writes, errors become
``StoreError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from syndication.types import DigestIssue, NodeInfo

from . import deliveries as _deliveries
from . import documents as _documents
from . import limits as _limits
from . import scopes as _scopes
from . import service as _service
from . import subscribers as _subscribers
from .deliveries import Claim
from .documents import DocumentTag
from .engine import Database
from .service import Pruned


class RunningStore:
    """Mixed into ``Store``."""

    _db: Database

    # --- polls ----------------------------------------------------------------------

    def claim_sources(
        self, ids: Sequence[str], *, limit: int, lease: timedelta, owner: str, now: datetime
    ) -> list[str]:
        """Lease to ``owner`` up to ``limit`` of the sources ``ids`` that are due (never polled,
        or ``next_attempt`` reached) and not leased by another worker, longest due first.
        Recording a poll (``record_polls``) gives its lease back.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("claim sources", write=True) as connection:
            return _service.claim_sources(connection, ids, limit=limit, lease=lease, owner=owner, now=now)

    def release_sources(self, *, owner: str, ids: Sequence[str] | None = None) -> int:
        """Give back the source leases ``owner`` holds (only ``ids``, if given); how many.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("release sources", write=True) as connection:
            return _service.release_sources(connection, owner=owner, ids=ids)

    def next_poll(self, ids: Sequence[str], *, now: datetime) -> datetime | None:
        """When the next of the sources ``ids`` falls due (``now`` when one is due already).

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read the next poll") as connection:
            return _service.next_poll(connection, ids, now=now)

    # --- deliveries -----------------------------------------------------------------

    def renew_delivery_leases(self, ids: Sequence[int], *, owner: str, until: datetime) -> int:
        """Extend to ``until`` the leases ``owner`` still holds on deliveries ``ids`` (a sender
        that is still at work keeps its rows); how many.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("renew delivery leases", write=True) as connection:
            return _deliveries.renew_leases(connection, ids, owner=owner, until=until)

    def release_deliveries(self, ids: Sequence[int], *, owner: str, now: datetime) -> int:
        """Give back deliveries ``owner`` claimed and did not try: due again at once. How many.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("release deliveries", write=True) as connection:
            return _deliveries.release(connection, ids, owner=owner, now=now)

    def delivery_claims(self, *, issue_id: int | None, now: datetime) -> list[Claim]:
        """Who holds leases on deliveries (of one issue, or of all) that run until ``now``
        or later: how many each, and until when.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read delivery claims") as connection:
            return _deliveries.claims(connection, issue_id=issue_id, now=now)

    def take_over_deliveries(self, *, owner: str, issue_id: int | None, now: datetime) -> int:
        """Make the deliveries ``owner`` holds (of one issue, or of all) due again now,
        whatever their leases: ``owner`` is known to be gone. How many.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("take over delivery claims", write=True) as connection:
            return _deliveries.take_over(connection, owner=owner, issue_id=issue_id, now=now)

    def next_delivery(self, *, now: datetime) -> datetime | None:
        """When a delivery of any issue next falls due; None when nothing is left to send.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read the next delivery") as connection:
            return _deliveries.next_due(connection, now=now)

    def find_issue(self, digest: str, scheduled_for: datetime) -> DigestIssue | None:
        """The issue of ``digest`` for exactly ``scheduled_for``, if one was made.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("find an issue") as connection:
            return _deliveries.find_issue(connection, digest, scheduled_for)

    def mark_planned(self, issue_id: int, *, now: datetime) -> None:
        """Record that the issue's outbox is written in full (planning it again adds nothing).

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("mark an issue planned", write=True) as connection:
            _deliveries.mark_planned(connection, issue_id, now=now)

    # --- nodes ----------------------------------------------------------------------

    def heartbeat(
        self,
        *,
        owner: str,
        role: str,
        started: datetime,
        now: datetime,
        forget_before: datetime | None = None,
    ) -> None:
        """Record that the process ``owner`` is alive at ``now``, and forget the processes
        silent since ``forget_before`` (when given): every process keeps the list clean,
        also where no scheduler runs the daily clean-up.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("record a heartbeat", write=True) as connection:
            _service.heartbeat(
                connection, owner=owner, role=role, started=started, now=now, forget_before=forget_before
            )

    def remove_node(self, owner: str) -> None:
        """Forget a process that stopped.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("remove a node", write=True) as connection:
            _service.remove_node(connection, owner)

    def list_nodes(self) -> list[NodeInfo]:
        """The processes that reported themselves, by role.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("list nodes") as connection:
            return _service.list_nodes(connection)

    # --- published documents ------------------------------------------------------

    def record_documents(self, built: Sequence[DocumentTag], *, now: datetime) -> dict[DocumentTag, datetime]:
        """Record the entity-tags of documents just built (by any process); for each, when
        its bytes last changed: its ``Last-Modified`` (see ``documents.record``). A changed
        page 1 becomes due for a WebSub ping.

        Raises:
            StoreError: the database failed.
        """
        if not built:
            return {}
        with self._db.transaction("record published documents", write=True) as connection:
            return _documents.record(connection, built, now=now)

    def pending_pings(self) -> list[DocumentTag]:
        """The feeds (page 1, by format) changed since the WebSub hub last heard of them.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read pending pings") as connection:
            return _documents.pending_pings(connection)

    def mark_pinged(self, documents: Sequence[DocumentTag]) -> None:
        """The hub took the pings of these documents (as tagged); a later change stays due.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("mark pings sent", write=True) as connection:
            _documents.mark_pinged(connection, documents)

    # --- retention ------------------------------------------------------------------

    def prune(
        self,
        *,
        articles_before: datetime | None,
        deliveries_before: datetime | None,
        nodes_before: datetime,
        requests_before: datetime | None = None,
        rate_hits_before: datetime | None = None,
    ) -> Pruned:
        """Delete what retention no longer keeps, in one transaction: articles published
        and first seen before ``articles_before`` (with their duplicates, and the page
        validators checked before then), the deliveries and archived pages of finished
        issues scheduled before ``deliveries_before`` (the issues stay, with their
        per-branch totals), processes silent since ``nodes_before``, opt-in requests made
        before ``requests_before`` (a pending address never confirmed is deleted, any
        other keeps its row and loses the request: ``policy.lifecycle.stale_request``) and
        rate-limit hits made before ``rate_hits_before``. ``None`` keeps.
        Feeds that listed a deleted article are marked changed.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("prune", write=True) as connection:
            articles = pages = deliveries = issues = expired = hits = 0
            if articles_before is not None:
                roots, doomed = _service.old_articles(connection, before=articles_before)
                # Mark the feeds that listed them before the rows (and their categories) go.
                _scopes.touch(connection, roots)
                articles = _service.delete_articles(connection, doomed)
                pages = _service.prune_page_validators(connection, before=articles_before)
            if deliveries_before is not None:
                deliveries, issues = _service.prune_deliveries(connection, before=deliveries_before)
            nodes = _service.prune_nodes(connection, before=nodes_before)
            if requests_before is not None:
                expired = _subscribers.expire_requests(connection, before=requests_before)
            if rate_hits_before is not None:
                hits = _limits.prune(connection, before=rate_hits_before)
            return Pruned(
                articles=articles,
                deliveries=deliveries,
                issues_summarised=issues,
                page_validators=pages,
                nodes=nodes,
                subscribers=expired,
                rate_hits=hits,
            )
