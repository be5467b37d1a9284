"""The durable store: sources and their poll state, articles, page validators,
versions of published feeds and the published documents' tags and dates,
subscribers and their organisations, digest issues and the outbox of deliveries,
subscribe limits; migrations.

``Store`` is the one interface the rest of syndication uses. Its methods are
split by domain into query modules (``sources``, ``pages``, ``articles``,
``scopes``, ``documents``, ``subscribers``, ``limits``, ``deliveries``,
``monitoring``) that take a connection (the methods of the running service and of
the subscription pages sit in the mixins ``running`` and ``subscribing``);
``Store`` opens one transaction per call, holds the write lock for writes, and is
the edge where database errors become ``StoreError`` (``engine.wrap_errors``). The
schema lives in ``schema``; the database is created and changed only by the
Alembic migrations in ``migrations/``.

Synchronous on purpose: this is SQLAlchemy Core on a plain engine, and ``core``
calls it off the event loop in a worker thread (``asyncio.to_thread``, or an
executor of its own). Why: SQLite has no asynchronous driver that is more than a
thread around ``sqlite3`` anyway; a save is one short batched transaction, not
many small awaits; and writes are serialised in any case. So a thread per call is
the simplest correct choice, costs nothing we can measure, and is fine for
PostgreSQL too. Every method is thread-safe.

SQLite is the default (a file; its directory is created if missing);
PostgreSQL works by changing the URL to ``postgresql+psycopg://...``.

Change tracking, for publishing feeds without database work per request: every
save that changes what a feed shows gives a new, larger version to the scopes of
the feeds it changed (``"all"``, ``"category:<slug>"``, ``"source:<id>"``), in the
same transaction. ``content_version()`` and ``changed_scopes(since=...)`` are one
cheap query each, and see saves made by other processes as soon as they commit.
Every datetime going in must be timezone-aware, and every one coming out is
aware UTC.

Must not: import other components, read the settings object or the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Literal

from syndication.types import (
    Article,
    Delivery,
    DigestIssue,
    KeyedArticle,
    PollRecord,
    SaveCounts,
    SourceSpec,
    SourceState,
    Subscriber,
    SubscriberData,
    SubscriberStatus,
)

from . import articles as _articles
from . import deliveries as _deliveries
from . import migrate as _migrate
from . import monitoring as _monitoring
from . import pages as _pages
from . import scopes as _scopes
from . import service as _service
from . import sources as _sources
from . import subscribers as _subscribers
from .deliveries import NO_ORGANISATION, Claim, NewDelivery
from .documents import DocumentTag
from .engine import Database, display_url
from .running import RunningStore
from .service import Pruned
from .subscribers import PreferenceConflict, SubscriberCounts
from .subscribing import SubscribingStore
from .util import name_order

__all__ = [
    "NO_ORGANISATION",
    "Claim",
    "DocumentTag",
    "NewDelivery",
    "PreferenceConflict",
    "Pruned",
    "Store",
    "SubscriberCounts",
    "display_url",
]


class Store(RunningStore, SubscribingStore):
    """The store behind one database URL.

    Usable as a context manager, which closes it. Every method is one
    transaction: it either happens entirely or not at all.
    """

    def __init__(self, url: str) -> None:
        """Open the database at ``url`` (SQLAlchemy form, e.g. ``sqlite:///var/syndication.db``).

        This does not create or upgrade tables: call ``upgrade()``.

        Raises:
            StoreError: the URL is invalid or the database cannot be opened.
        """
        self._db = Database(url)

    @property
    def url(self) -> str:
        """The database URL with its password hidden: safe to show."""
        return self._db.name

    def close(self) -> None:
        """Close every connection. The store cannot be used afterwards."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- migrations ---------------------------------------------------------------

    def upgrade(self) -> None:
        """Create or migrate the tables to the newest revision; does nothing when up to date.

        Raises:
            StoreError: the database failed, or it was upgraded by a newer version of syndication.
        """
        with self._db.schema_transaction("upgrade the database") as connection:
            _migrate.upgrade(connection)

    def revision(self) -> str | None:
        """The database's schema revision; None before the first ``upgrade()``.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read the schema revision") as connection:
            current = _migrate.current_revisions(connection)
        return ",".join(sorted(current)) or None

    def needs_upgrade(self) -> bool:
        """Whether ``upgrade()`` has migrations to run.

        Raises:
            StoreError: the database failed, or it was upgraded by a newer version of syndication.
        """
        with self._db.transaction("read the schema revision") as connection:
            current = _migrate.current_revisions(connection)
        _migrate.check_known(current)
        return current != _migrate.head_revisions()

    # --- sources ------------------------------------------------------------------

    def sync_sources(self, specs: Sequence[SourceSpec]) -> None:
        """Make the stored sources match the configured ones: insert new ids, update URL and kind.

        A source whose URL changed forgets its etag and last_modified. Sources no
        longer configured are kept, with their articles.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("save sources", write=True) as connection:
            _sources.sync_sources(connection, specs)

    def source_states(self, ids: Sequence[str] | None = None) -> dict[str, SourceState]:
        """What the store remembers of the given sources (all when ``ids`` is None), by id.

        Unknown ids are absent from the result. ``article_count`` counts every
        article the source has listed, including ones first seen elsewhere.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read sources") as connection:
            return _sources.source_states(connection, ids)

    def record_polls(self, records: Sequence[PollRecord]) -> None:
        """Persist the outcome of polls, in one transaction.

        Sets last_attempt, next_attempt, error_count and last_error (cleared when
        ok), last_success when ok, and the etag, last_modified and last_warning unless
        ``keep_validators``. Records of unknown sources are ignored.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("record polls", write=True) as connection:
            _sources.record_polls(connection, records)

    # --- pages --------------------------------------------------------------------

    def page_validators(self, urls: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        """The stored ``(etag, last_modified)`` of portal article pages, by URL; unknown URLs are absent.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read page validators") as connection:
            return _pages.get_validators(connection, urls)

    def save_page_validators(
        self, items: Sequence[tuple[str, str | None, str | None]], *, now: datetime
    ) -> None:
        """Store ``(url, etag, last_modified)`` of portal article pages, checked at ``now``.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("save page validators", write=True) as connection:
            _pages.save_validators(connection, items, now=now)

    # --- articles -----------------------------------------------------------------

    def save_articles(
        self,
        *,
        source_id: str,
        categories: Sequence[str],
        articles: Sequence[KeyedArticle],
        now: datetime,
    ) -> SaveCounts:
        """Save the articles of one poll of ``source_id`` into ``categories``, in one transaction.

        - An article is identified by ``keys.identity``; the same identity twice
          in the batch is merged (the later occurrence updates the earlier).
        - Known identity: the source's categories and the source are added to it.
          If ``keys.content_hash`` differs, its fields are updated in place and
          ``updated`` becomes ``data.updated`` or ``now`` (counted as updated when
          something a reader sees changed, else as unchanged); an empty field never
          replaces a stored non-empty one.
        - New identity: inserted with ``published`` = ``data.published`` or ``now``,
          ``updated`` = ``data.updated`` or ``published``, ``first_seen`` = ``now``.
          If an earlier article (stored, or earlier in this batch) has the same
          ``keys.title_key`` and a body with ``text.similarity`` at least
          ``text.NEAR_DUPLICATE_THRESHOLD`` (or both bodies are very short and they
          were published within ``articles.SHORT_BODY_WINDOW``), it becomes a
          duplicate of that article's root, which also gets the categories.
        - Nothing is ever deleted.
        - Feeds changed (see ``changed_scopes``) when something a feed shows did:
          an article that is not a duplicate was inserted, changed visibly (as
          counted in ``updated``), got a category or was listed by a source for the
          first time. Then one new version is given to "all" and to every category
          and source scope of every such article (all its categories and sources,
          old and new). Duplicates are hidden from feeds and change none, except
          that a root getting a duplicate's category is a change of the root. A batch
          that changes nothing a feed shows leaves every version as it was.

        Raises:
            StoreError: the source is unknown, or the database failed (nothing was saved).
        """
        with self._db.transaction(f"save articles of source {source_id!r}", write=True) as connection:
            return _articles.save_articles(
                connection, source_id=source_id, categories=categories, items=articles, now=now
            )

    def list_articles(
        self,
        *,
        category: str | None = None,
        search: str | None = None,
        source_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
        include_duplicates: bool = False,
    ) -> list[Article]:
        """Up to ``limit`` articles, newest first (published, then id, descending), skipping ``offset``.

        ``category``: only articles in it. ``source_id``: only articles that source
        listed. ``search``: a string already folded with ``text.search_key``; it must
        appear in the article's search text as a phrase starting at a word. Duplicates are left
        out unless ``include_duplicates``. The order is total, so pages taken with
        ``offset`` neither skip nor repeat articles while nothing is saved between them
        (use ``changed_scopes`` to know when something was). A negative limit or
        offset counts as 0.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("list articles") as connection:
            return _articles.list_articles(
                connection,
                category=category,
                search=search,
                source_id=source_id,
                limit=limit,
                offset=offset,
                include_duplicates=include_duplicates,
            )

    def get_article(self, id: int) -> Article | None:
        """The article with this id (duplicate or not), or None.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read an article") as connection:
            return _articles.get_article(connection, id)

    def count_articles(
        self,
        *,
        category: str | None = None,
        source_id: str | None = None,
        include_duplicates: bool = True,
    ) -> int:
        """How many articles ``list_articles`` with the same arguments lists without a limit.

        ``category`` and ``source_id`` filter as in ``list_articles``. Unlike there,
        duplicates are counted unless ``include_duplicates=False``: with no arguments
        this is every stored article, as it always was. To count the articles of a
        feed (to number its pages), pass ``include_duplicates=False``.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("count articles") as connection:
            return _articles.count_articles(
                connection, category=category, source_id=source_id, include_duplicates=include_duplicates
            )

    # --- feed versions ------------------------------------------------------------

    def content_version(self) -> int:
        """The version of the newest save that changed a feed; 0 when none ever did.

        Versions only grow (1, 2, 3...), committed in order: a reader that saw
        version ``v`` has seen every change up to ``v``. Read the version before
        the articles, so a save committed in between is seen again next time.
        One query.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read the content version") as connection:
            return _scopes.content_version(connection)

    def changed_scopes(self, *, since: int) -> tuple[int, frozenset[str]]:
        """``(content_version(), scopes changed after version since)``, read together in one query.

        Scopes name feeds: ``"all"``, ``"category:<slug>"``, ``"source:<id>"``.
        Since 0: every scope that ever had an article. A ``since`` newer than the
        current version (the database was replaced or restored) gives no scopes:
        a reader seeing the version go down should rebuild everything.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read changed feeds") as connection:
            return _scopes.changed_scopes(connection, since=since)

    def digest_articles(
        self,
        *,
        categories: Sequence[str],
        seen_after: datetime,
        seen_until: datetime,
        limit: int,
        recent_after: datetime | None = None,
        first: bool = False,
    ) -> list[Article]:
        """Up to ``limit`` articles for a digest window, newest first (published, then id, descending).

        The window is of ``first_seen``, the time we learned of an article, so a
        back-dated article is never missed: ``seen_after < first_seen <= seen_until``.
        Duplicates are left out; ``categories``: articles in any of them (empty: all).
        With ``recent_after``, a catch-up is bounded as ``digest.select.takes`` says:
        in a ``first`` window every article, else those of a source that started after
        ``seen_after``, must be dated (``published`` if ``dated``, else ``first_seen``)
        after ``recent_after``.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read articles for a digest") as connection:
            return _articles.digest_articles(
                connection,
                categories=categories,
                seen_after=seen_after,
                seen_until=seen_until,
                limit=limit,
                recent_after=recent_after,
                first=first,
            )

    # --- subscribers --------------------------------------------------------------

    def upsert_subscribers(
        self, rows: Sequence[SubscriberData], *, now: datetime, event: Literal["import", "add"] = "import"
    ) -> SubscriberCounts:
        """Insert or update subscribers by address (lower-cased), in one transaction.

        The status follows ``policy.lifecycle`` for ``event`` (``import`` of directory
        rows, or ``add``, whose rows are active whatever they say):

        - A new address is inserted with the row's status and a new token.
        - A known address gets the row's display name, organisation (None: none),
          categories and digest, except the fields the person chose themselves (on the
          preferences page, or by confirming a request of the form): those stay, and
          each one the row would have changed is reported in ``conflicts``.
        - A pending or active address takes the row's status. One that unsubscribed or
          bounced keeps its status: the directory never re-activates one (counted as
          ``kept_unsubscribed`` or ``kept_bounced``), and an open opt-in request beside
          it stays open for the person to confirm.
        - Organisations are created by name, and a row's ``organisation_parent``
          (created too) becomes its organisation's parent; a row without one leaves
          the parent as it was.
        - The same address twice in ``rows``: the last row wins.
        - ``confirmed`` is set the first time an address becomes active.

        Raises:
            StoreError: an organisation would become its own ancestor, or the database
                failed (nothing was saved).
            ValueError: a category is not a slug or a status is unknown (a bug: the
                directory validates both first).
        """
        with self._db.transaction("save subscribers", write=True) as connection:
            return _subscribers.upsert_subscribers(connection, rows, now=now, event=event)

    def add_subscriber(self, row: SubscriberData, *, now: datetime) -> Subscriber:
        """Upsert one subscriber by the rules of ``upsert_subscribers``; the stored result.

        Raises:
            StoreError: as for ``upsert_subscribers``.
        """
        with self._db.transaction("save a subscriber", write=True) as connection:
            _subscribers.upsert_subscribers(connection, [row], now=now)
            found = _subscribers.get_by_address(connection, row.address)
        assert found is not None
        return found

    def remove_subscriber(self, address: str) -> bool:
        """Delete the subscriber with this address; whether there was one.

        Its deliveries stay for reports (with their copies of the address and
        organisation name, ``subscriber_id`` None); ``claim_deliveries`` marks the
        ones not yet sent failed instead of handing them out.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("remove a subscriber", write=True) as connection:
            return _subscribers.remove_subscriber(connection, address)

    def get_subscriber(self, *, address: str | None = None, token: str | None = None) -> Subscriber | None:
        """The subscriber with this address (any case) or token (give exactly one), or None.

        Raises:
            StoreError: the database failed.
        """
        if (address is None) == (token is None):
            raise ValueError("give exactly one of address and token")
        with self._db.transaction("read a subscriber") as connection:
            if address is not None:
                return _subscribers.get_by_address(connection, address)
            assert token is not None
            return _subscribers.get_by_token(connection, token)

    def subscribers_by_ids(self, ids: Sequence[int]) -> list[Subscriber]:
        """The subscribers with these ids, ordered by id; unknown ids are left out.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read subscribers") as connection:
            return _subscribers.by_ids(connection, ids)

    def list_subscribers(
        self,
        *,
        status: SubscriberStatus | None = None,
        digest: str | None = None,
        organisation: str | None = None,
    ) -> list[Subscriber]:
        """Subscribers, filtered by each argument given, ordered by organisation
        (Vietnamese letters beside their base letter; none last), then address.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("list subscribers") as connection:
            return _subscribers.list_subscribers(
                connection, status=status, digest=digest, organisation=organisation
            )

    def count_subscribers_by_status(self) -> dict[str, int]:
        """How many subscribers have each status; every status is a key.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("count subscribers") as connection:
            return _subscribers.count_by_status(connection)

    def list_organisations(self) -> list[tuple[str, str | None]]:
        """Every organisation as ``(name, parent's name or None)``, ordered by name.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("list organisations") as connection:
            return _subscribers.list_organisations(connection)

    def record_bounce(self, subscriber_id: int, *, threshold: int, now: datetime) -> bool:
        """Count one permanent failure of the subscriber's address; whether it is now bounced.

        A pending or active subscriber becomes bounced once it has ``threshold``
        bounces (its opt-in request, if any, is closed); an unsubscribed one stays
        unsubscribed. Unknown ids: False.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("record a bounce", write=True) as connection:
            return _subscribers.record_bounce(connection, subscriber_id, threshold=threshold, now=now)

    # --- digest issues and deliveries ---------------------------------------------------

    def create_issue(
        self, digest: str, scheduled_for: datetime, *, now: datetime, catch_up: bool = False
    ) -> tuple[DigestIssue, bool]:
        """The issue of ``digest`` for ``scheduled_for``, and whether this call made it
        (``catch_up`` is recorded on a new issue only; see ``DigestIssue.catch_up``).

        Race-safe: processes creating the same issue at once all get the one row.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction(f"create an issue of digest {digest!r}", write=True) as connection:
            return _deliveries.create_issue(connection, digest, scheduled_for, now=now, catch_up=catch_up)

    def get_issue(self, id: int) -> DigestIssue | None:
        """The issue with this id, or None.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read an issue") as connection:
            return _deliveries.get_issue(connection, id)

    def latest_issue(self, digest: str) -> DigestIssue | None:
        """The issue of ``digest`` scheduled last, or None.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read an issue") as connection:
            found = _deliveries.list_issues(connection, digest, limit=1)
        return found[0] if found else None

    def list_issues(self, digest: str, *, limit: int = 50) -> list[DigestIssue]:
        """The ``limit`` issues of ``digest`` scheduled last, newest first.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("list issues") as connection:
            return _deliveries.list_issues(connection, digest, limit=limit)

    def last_windows(self, digest: str, subscriber_ids: Sequence[int]) -> dict[int, datetime]:
        """For each subscriber, the ``window_end`` of its latest sent delivery of ``digest``;
        subscribers with none are absent.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read previous digest windows") as connection:
            return _deliveries.last_windows(connection, digest, subscriber_ids)

    def add_deliveries(self, issue_id: int, items: Sequence[NewDelivery], *, now: datetime) -> int:
        """Put pending deliveries of an issue in the outbox; how many were added.

        Idempotent: an item whose (issue, address) is already there is skipped and
        the stored row left as it is.

        Raises:
            StoreError: the issue is unknown, a Message-ID is already used by another
                delivery, or the database failed (nothing was added).
        """
        with self._db.transaction("add deliveries", write=True) as connection:
            return _deliveries.add_deliveries(connection, issue_id, items, now=now)

    def claim_deliveries(
        self, *, issue_id: int | None, limit: int, lease: timedelta, owner: str, now: datetime
    ) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries (of one issue, or of all) to ``owner``, oldest first.

        Due: pending; retrying with ``next_attempt <= now``; or sending with a lease
        that ended before ``now`` (its sender crashed). Each becomes sending until
        ``now + lease``, leased by ``owner`` (unique per sender process), with one
        more attempt; the Message-ID never changes. A due row whose subscriber was
        removed or is no longer active is marked failed instead, and not returned.
        Two senders never get the same row (the write lock; ``FOR UPDATE SKIP
        LOCKED`` on PostgreSQL). Fewer than ``limit`` means nothing else is due.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("claim deliveries", write=True) as connection:
            return _deliveries.claim_deliveries(
                connection, issue_id=issue_id, limit=limit, lease=lease, owner=owner, now=now
            )

    def mark_sent(self, ids: Sequence[int], *, owner: str, now: datetime) -> int:
        """Mark deliveries sent at ``now``; only rows still sending under ``owner``'s lease
        change (another sender may have taken over one). How many did.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("mark deliveries sent", write=True) as connection:
            return _deliveries.mark_sent(connection, ids, owner=owner, now=now)

    def mark_retry(self, id: int, *, owner: str, error: str, next_attempt: datetime, now: datetime) -> bool:
        """Mark a delivery to be retried at ``next_attempt``, keeping ``error``; only if it is
        still sending under ``owner``'s lease. Whether it was.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("mark a delivery for retry", write=True) as connection:
            return _deliveries.mark_retry(
                connection, id, owner=owner, error=error, next_attempt=next_attempt, now=now
            )

    def mark_failed(self, id: int, *, owner: str, error: str, now: datetime) -> bool:
        """Mark a delivery failed for good with ``error``; only if it is still sending under
        ``owner``'s lease. Whether it was.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("mark a delivery failed", write=True) as connection:
            return _deliveries.mark_failed(connection, id, owner=owner, error=error, now=now)

    def save_archive(self, issue_id: int, key: str, html: str, *, now: datetime) -> None:
        """Keep the shared HTML of one content of an issue (first write wins).

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("archive a digest", write=True) as connection:
            _deliveries.save_archive(connection, issue_id, key, html, now)

    def get_archive(self, issue_id: int, key: str) -> str | None:
        """The archived HTML of one content of an issue, if any.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read a digest archive") as connection:
            return _deliveries.get_archive(connection, issue_id, key)

    def supersede(self, *, digest: str, before_issue: int, now: datetime) -> int:
        """Mark ``superseded`` the never-tried and retry-waiting deliveries of ``digest``'s
        issues before ``before_issue``: the newer issue carries their articles. How many.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("supersede older deliveries", write=True) as connection:
            return _deliveries.supersede(connection, digest=digest, before_issue=before_issue, now=now)

    def delivery_counts(self, issue_id: int) -> dict[str, int]:
        """How many deliveries of the issue have each status; every status is a key.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("count deliveries") as connection:
            counts = _deliveries.delivery_counts(connection, issue_id)
            if not any(counts.values()):
                # Retention deleted the rows: the totals the issue kept stand in for them.
                for _, sent, failed, superseded, other in _service.summarised(connection, issue_id):
                    counts["sent"] += sent
                    counts["failed"] += failed
                    counts["superseded"] += superseded
                    counts["pending"] += other
            return counts

    def issue_report(self, issue_id: int) -> list[tuple[str, int, int, int, int]]:
        """Per organisation of the issue: ``(name, delivered, failed, superseded, pending or
        other)``; the counts add up to the organisation's deliveries. Superseded ones were
        replaced by a later issue, which carries their articles: they did not fail.

        The organisation is the one the subscriber had when the issue was built;
        addresses with none come last as ``NO_ORGANISATION``. Ordered by name, with
        Vietnamese letters beside their base letter.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("report on an issue") as connection:
            report = _deliveries.issue_report(connection, issue_id)
            if not report:
                # Retention deleted the rows: report the totals the issue kept.
                report = [
                    (name or NO_ORGANISATION, sent, failed, superseded, other)
                    for name, sent, failed, superseded, other in _service.summarised(connection, issue_id)
                ]
                report.sort(key=lambda row: (row[0] == NO_ORGANISATION, name_order(row[0])))
            return report

    def get_deliveries(self, issue_id: int) -> list[Delivery]:
        """Every delivery of the issue, in the order they were added.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read deliveries") as connection:
            return _deliveries.get_deliveries(connection, issue_id)

    # --- monitoring ---------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the database answers (``SELECT 1``); returns when it did.

        Raises:
            StoreError: the database cannot be reached.
        """
        with self._db.transaction("reach the database") as connection:
            _monitoring.ping(connection)

    def count_deliveries_by_status(self) -> dict[str, int]:
        """How many deliveries of all issues have each status; every status is a key.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("count deliveries") as connection:
            return _monitoring.delivery_counts(connection)
