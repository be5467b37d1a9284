"""The one place that wires components together from settings.

``Syndication`` owns the store, the fetcher and the parse pool, and runs the
use-cases the shells (CLI, scheduler, web app) call: upgrade the store, poll
sources, list sources, articles and subscribers, plan digests, prune. Components
get plain arguments, never the settings object.

The work of each domain lives in its own module of this package; this one wires
them and keeps the thin use-cases. ``polling`` (fetch, parse, save and record
each source), ``feeds`` (publishing), ``digests`` (planning and sending) and
``subscriptions`` (the subscription pages) are objects ``Syndication`` creates on
first use and hands the store, the runners and the clock; ``operations`` holds
the health check and metrics, ``service`` the workers of the running service
(they call ``Syndication``), ``batching`` the write-behind of small writes.

Threads and processes: the store is synchronous SQLAlchemy called through a
dedicated thread pool (one thread for SQLite, so writers never contend for its
lock); parsing runs in a process pool so it uses every core while the event
loop goes on fetching. This is the only module that reads the wall clock
(``utc_now``); everything else is handed a clock or ``now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from syndication import text
from syndication.config import Settings
from syndication.core import operations
from syndication.core.digests import DigestService
from syndication.core.feeds import FeedService
from syndication.core.parsing import ParsePool, make_parse_pool
from syndication.core.polling import Poller
from syndication.core.service import NODE_EXPIRY
from syndication.core.subscriptions import LONGEST_WINDOW, SubscriptionService
from syndication.errors import SyndicationError
from syndication.ingest.fetch import Fetcher, HttpFetcher
from syndication.mail.send import Transport
from syndication.metrics import Metrics
from syndication.store import Pruned, Store, SubscriberCounts
from syndication.types import (
    Article,
    Clock,
    DigestIssue,
    DigestRun,
    HealthReport,
    MetricsSnapshot,
    NodeInfo,
    PollResult,
    SourceSpec,
    SourceState,
    Subscriber,
    SubscriberData,
    SubscriberStatus,
)

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
"""The Jinja2 templates (the repository's ``templates/``, shipped in the package)."""

P = ParamSpec("P")
R = TypeVar("R")


def utc_now() -> datetime:
    """The wall clock, aware UTC: the default ``Clock``."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessReport:
    """A process of the service as the store knows it, and whether it is still heard from."""

    node: NodeInfo
    lost: bool
    """True when it stopped beating without leaving (``operations.node_lost``); the daily
    clean-up forgets it ``NODE_EXPIRY`` after its last heartbeat."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceReport:
    """A configured source with what the store remembers of it."""

    spec: SourceSpec
    state: SourceState | None


class Syndication:
    """The application, wired from ``Settings``. Use as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        store: Store | None = None,
        fetcher: Fetcher | None = None,
        backlog_bytes: int = 0,
        transport_factory: Callable[[], Transport] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._jitter = jitter
        # Unique per instance even in one process (tests run several), readable in `status`.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        """Who holds this process's leases (sources, deliveries) and heartbeats."""
        self.store = store if store is not None else Store(settings.storage.url)
        self._fetcher = fetcher
        self._own_fetcher = fetcher is None
        self._parse_pool: ParsePool | None = None
        self._parse_pool_made = False
        sqlite = settings.storage.url.startswith("sqlite")
        self._db_executor = ThreadPoolExecutor(max_workers=1 if sqlite else 4, thread_name_prefix="store")
        self._started = False
        self._transport_factory = transport_factory
        self._backlog_bytes = backlog_bytes
        self._feed_service: FeedService | None = None
        self._digest_service: DigestService | None = None
        self._subscription_service: SubscriptionService | None = None
        self._polls: Poller | None = None
        self.metrics = Metrics()

    # --- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Syndication:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._fetcher is not None and self._own_fetcher and isinstance(self._fetcher, HttpFetcher):
            await self._fetcher.aclose()
        if self._parse_pool is not None:
            self._parse_pool.close()
        await self._db(self.store.close)
        self._db_executor.shutdown(wait=True)

    async def start(self) -> None:
        """Bring the store's schema up to date and record the configured sources."""
        if self._started:
            return
        await self._db(self.store.upgrade)
        await self._db(self.store.sync_sources, self.settings.sources)
        self._started = True

    async def upgrade(self) -> str | None:
        """Apply pending migrations; returns the revision the store is at."""
        await self._db(self.store.upgrade)
        return await self._db(self.store.revision)

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            f = self.settings.fetch
            self._fetcher = HttpFetcher(
                user_agent=f.user_agent,
                timeout=f.timeout,
                max_bytes=f.max_bytes,
                max_redirects=f.max_redirects,
                concurrency=f.concurrency,
                per_host=f.per_host,
                clock=self.clock,
            )
        return self._fetcher

    async def _db(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_executor, partial(fn, *args, **kwargs))

    async def _parse(self, fn: Callable[..., R], content: bytes, /, *, url: str, **kwargs: Any) -> R:
        """``fn(content, url=url, ...)`` in the parse pool (created on first use), or in a
        thread with ``parse_workers = 1`` (no time or memory limit then)."""
        if not self._parse_pool_made:
            f = self.settings.fetch
            self._parse_pool = make_parse_pool(
                f.parse_workers, timeout=f.parse_timeout, memory_limit=f.parse_memory
            )
            self._parse_pool_made = True
        if self._parse_pool is None:
            return await asyncio.to_thread(fn, content, url=url, **kwargs)
        return await self._parse_pool.parse(fn, content, url=url, **kwargs)

    # --- use-cases -----------------------------------------------------------------

    def select_sources(self, source_ids: Sequence[str] | None) -> list[SourceSpec]:
        """The configured sources named (all when ``None``).

        Raises:
            SyndicationError: a named source is not configured.
        """
        if not source_ids:
            return list(self.settings.sources)
        known = {s.id: s for s in self.settings.sources}
        missing = [i for i in source_ids if i not in known]
        if missing:
            raise SyndicationError(
                f"unknown source {', '.join(missing)} (configured: {', '.join(known) or 'none'})"
            )
        return [known[i] for i in dict.fromkeys(source_ids)]

    async def poll(
        self,
        source_ids: Sequence[str] | None = None,
        *,
        on_result: Callable[[PollResult], None] | None = None,
    ) -> list[PollResult]:
        """Poll the given sources (all by default) once, concurrently.

        One source's failure never stops the others: each gets its own
        ``PollResult`` and its outcome is persisted as soon as it is known.
        """
        specs = self.select_sources(source_ids)
        await self.start()
        states = await self._db(self.store.source_states, [s.id for s in specs])

        def observe(result: PollResult) -> None:
            self.metrics.observe_poll(result.source_id, result.status, result.counts.new)
            if on_result is not None:
                on_result(result)

        results = await self._poller().poll(specs, states, on_result=observe)
        if self._feed_service is not None and any(r.status in ("new", "updated") for r in results):
            await self._feed_service.refresh()
        return results

    def _poller(self) -> Poller:
        """The one ``Poller`` of this application (created on first use)."""
        if self._polls is None:
            self._polls = Poller(
                self.settings,
                store=self.store,
                db=self._db,
                fetcher=self.fetcher,
                parse=self._parse,
                clock=self.clock,
                jitter=self._jitter,
                backlog_bytes=self._backlog_bytes,
            )
        return self._polls

    # --- subscribers and digests -------------------------------------------------------

    async def upsert_subscribers(
        self, rows: Sequence[SubscriberData], *, event: Literal["import", "add"] = "import"
    ) -> SubscriberCounts:
        """Import directory rows (or ``add`` one, active) by the rules of ``Store.upsert_subscribers``."""
        await self.start()
        return await self._db(self.store.upsert_subscribers, rows, now=self.clock(), event=event)

    async def list_subscribers(
        self, *, status: str | None = None, digest: str | None = None
    ) -> list[Subscriber]:
        statuses: dict[str, SubscriberStatus] = {
            "pending": "pending",
            "active": "active",
            "unsubscribed": "unsubscribed",
            "bounced": "bounced",
        }
        if status is not None and status not in statuses:
            raise SyndicationError(f'unknown status "{status}" (pending, active, unsubscribed, bounced)')
        if digest is not None and self.settings.digest(digest) is None:
            raise SyndicationError(f'unknown digest "{digest}"')
        await self.start()
        return await self._db(
            self.store.list_subscribers, status=statuses[status] if status else None, digest=digest
        )

    async def get_subscriber(self, address: str) -> Subscriber | None:
        await self.start()
        return await self._db(self.store.get_subscriber, address=address)

    async def remove_subscriber(self, address: str) -> bool:
        await self.start()
        return await self._db(self.store.remove_subscriber, address)

    async def subscriber_counts(self) -> dict[str, int]:
        """Subscribers per status (every status a key)."""
        await self.start()
        return await self._db(self.store.count_subscribers_by_status)

    async def latest_issue(self, digest: str) -> tuple[DigestIssue, dict[str, int]] | None:
        """The latest issue of ``digest`` with its deliveries per status, if it ever ran."""
        await self.start()
        issue = await self._db(self.store.latest_issue, digest)
        if issue is None:
            return None
        return issue, await self._db(self.store.delivery_counts, issue.id)

    async def delivery_counts(self, issue_id: int) -> dict[str, int]:
        return await self._db(self.store.delivery_counts, issue_id)

    async def digest_report(
        self, name: str, issue_id: int | None = None
    ) -> tuple[DigestIssue, list[tuple[str, int, int, int, int]]]:
        """The issue (default: the latest of ``name``) and its per-branch counts: delivered,
        failed, superseded, pending (``Store.issue_report``).

        Raises:
            SyndicationError: unknown digest or issue.
        """
        service = await self.digest_service()
        service.spec(name)
        issue = (
            await self._db(self.store.get_issue, issue_id)
            if issue_id is not None
            else await self._db(self.store.latest_issue, name)
        )
        if issue is None or issue.digest != name:
            raise SyndicationError(
                f"digest {name} has no issue {issue_id}" if issue_id else f"digest {name} was never sent"
            )
        return issue, await self._db(self.store.issue_report, issue.id)

    async def digest_service(self) -> DigestService:
        """Plans and sends digests (created on first use)."""
        if self._digest_service is None:
            await self.start()
            self._digest_service = DigestService(
                self.settings,
                store=self.store,
                db=self._db,
                clock=self.clock,
                templates_dir=TEMPLATES,
                transport_factory=self._transport_factory,
                owner=self.owner,
                on_send=self.metrics.observe_send,
            )
        return self._digest_service

    async def subscription_service(self) -> SubscriptionService:
        """What the subscription pages ask (double opt-in, preferences, unsubscribe)."""
        if self._subscription_service is None:
            self._subscription_service = SubscriptionService(
                self.settings,
                store=self.store,
                db=self._db,
                clock=self.clock,
                digests=await self.digest_service(),
            )
        return self._subscription_service

    async def feed_service(self) -> FeedService:
        """The publisher of feeds, with page 1 of every feed built."""
        if self._feed_service is None:
            await self.start()
            fetcher = self.fetcher
            ping = fetcher.post_form if isinstance(fetcher, HttpFetcher) else None
            self._feed_service = FeedService(
                self.settings, store=self.store, db=self._db, clock=self.clock, ping=ping
            )
        await self._feed_service.start()
        return self._feed_service

    # --- the running service (see core/service.py) -------------------------------------

    async def claim_sources(self, *, limit: int) -> list[str]:
        """Lease to this process up to ``limit`` configured sources that are due."""
        await self.start()
        return await self._db(
            self.store.claim_sources,
            [s.id for s in self.settings.sources],
            limit=limit,
            lease=self.settings.service.poll_lease,
            owner=self.owner,
            now=self.clock(),
        )

    async def poll_claimed(self, source_ids: Sequence[str]) -> list[PollResult]:
        """Poll sources this process claimed; recording each outcome gives its lease back."""
        try:
            return await self.poll(source_ids)
        except BaseException:
            with contextlib.suppress(SyndicationError):
                await self._db(self.store.release_sources, owner=self.owner, ids=list(source_ids))
            raise

    async def release_sources(self) -> int:
        """Give back every source lease this process holds."""
        return await self._db(self.store.release_sources, owner=self.owner)

    async def next_poll(self) -> datetime | None:
        """When the next configured source falls due."""
        return await self._db(self.store.next_poll, [s.id for s in self.settings.sources], now=self.clock())

    async def next_delivery(self) -> datetime | None:
        """When the next delivery of any issue falls due; None when the outbox is empty."""
        return await self._db(self.store.next_delivery, now=self.clock())

    async def run_digest(self, name: str, scheduled_for: datetime) -> DigestRun:
        """Plan the run of ``name`` scheduled for ``scheduled_for`` (once, whoever asks)."""
        service = await self.digest_service()
        plan = await service.plan(name, scheduled_for=scheduled_for)
        issue_id = plan.issue.id if plan.issue else None
        if plan.resumed:
            return DigestRun(digest=name, scheduled_for=scheduled_for, outcome="exists", issue_id=issue_id)
        log.info(
            "digest %s: issue %s for %s: %d messages queued, %d subscribers with nothing new",
            name,
            issue_id,
            scheduled_for.isoformat(),
            plan.recipients,
            plan.nothing_new,
        )
        return DigestRun(
            digest=name,
            scheduled_for=scheduled_for,
            outcome="planned",
            recipients=plan.recipients,
            issue_id=issue_id,
        )

    async def issue_at(self, name: str, scheduled_for: datetime) -> DigestIssue | None:
        """The issue of ``name`` for exactly ``scheduled_for``, if one was made."""
        await self.start()
        return await self._db(self.store.find_issue, name, scheduled_for)

    async def prune(self) -> Pruned:
        """Delete what ``[retention]`` no longer keeps, the opt-in requests older than
        ``subscribe.confirm_expiry`` (unconfirmed pending addresses with them), and the
        rate-limit hits older than a day (the longest window)."""
        await self.start()
        now = self.clock()
        keep = self.settings.retention
        pruned = await self._db(
            self.store.prune,
            articles_before=now - keep.articles if keep.articles else None,
            deliveries_before=now - keep.deliveries if keep.deliveries else None,
            nodes_before=now - NODE_EXPIRY,
            requests_before=now - self.settings.subscribe.confirm_expiry,
            rate_hits_before=now - LONGEST_WINDOW,
        )
        log.info(
            "clean-up: %d articles, %d deliveries (%d issues kept as totals), %d page validators, "
            "%d unconfirmed subscribers deleted",
            pruned.articles,
            pruned.deliveries,
            pruned.issues_summarised,
            pruned.page_validators,
            pruned.subscribers,
        )
        if pruned.articles and self._feed_service is not None:
            await self._feed_service.refresh()
        return pruned

    async def heartbeat(self, role: str, started: datetime) -> bool:
        """Record in the store that this process is alive; False (logged) when the store failed:
        a missed heartbeat is never fatal."""
        now = self.clock()
        try:
            await self._db(
                self.store.heartbeat,
                owner=self.owner,
                role=role,
                started=started,
                now=now,
                forget_before=now - NODE_EXPIRY,
            )
        except SyndicationError as exc:
            log.error("could not record a heartbeat: %s", exc)  # noqa: TRY400 - our error: its message is the story
            return False
        return True

    async def leave(self) -> None:
        """Forget this process in the store (a clean stop)."""
        await self._db(self.store.remove_node, self.owner)

    async def keep_alive(self, role: str, started: datetime, stop: asyncio.Event) -> None:
        """Say in the store, every ``service.tick`` until ``stop`` is set, that this process
        is alive (as ``role``): other processes can then tell it is at work, and take over
        its claims once it falls silent (``core.service.claimer_state``)."""
        tick = max(self.settings.service.tick.total_seconds(), 0.05)
        while not stop.is_set():
            await self.heartbeat(role, started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick)

    @contextlib.asynccontextmanager
    async def alive(self, role: str) -> AsyncIterator[None]:
        """Heartbeats (``keep_alive``) while the block runs, then this process leaves the
        store's list of processes: for a command that claims work, as ``digest send``."""
        stop = asyncio.Event()
        beating = asyncio.create_task(self.keep_alive(role, self.clock(), stop))
        try:
            yield
        finally:
            stop.set()
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            with contextlib.suppress(SyndicationError):
                await self.leave()

    async def nodes(self) -> list[ProcessReport]:
        """The processes that reported themselves, each marked lost when it went silent."""
        await self.start()
        found = await self._db(self.store.list_nodes)
        now, tick = self.clock(), self.settings.service.tick
        return [
            ProcessReport(node=node, lost=operations.node_lost(node.heartbeat, now=now, tick=tick))
            for node in found
        ]

    async def source_reports(self) -> list[SourceReport]:
        """Every configured source with its stored state (polling history)."""
        await self.start()
        states = await self._db(self.store.source_states, [s.id for s in self.settings.sources])
        return [SourceReport(spec=s, state=states.get(s.id)) for s in self.settings.sources]

    async def articles(
        self,
        *,
        category: str | None = None,
        search: str | None = None,
        source_id: str | None = None,
        limit: int = 50,
    ) -> list[Article]:
        """Stored articles, newest first; ``search`` ignores diacritics and tone placement.

        A story republished under another address is listed once (the first article seen),
        except for ``source_id``: then every article that source listed is, its own copy of
        a story another source brought first included (marked ``duplicate_of``).

        Raises:
            SyndicationError: an unknown category slug.
        """
        if category is not None and category not in {c.slug for c in self.settings.categories}:
            known = ", ".join(c.slug for c in self.settings.categories) or "none"
            raise SyndicationError(f'unknown category "{category}" (configured: {known})')
        if source_id is not None:
            self.select_sources([source_id])
        await self.start()
        key = text.search_key(search) if search else None
        if search is not None and not key:
            return []
        return await self._db(
            self.store.list_articles,
            category=category,
            search=key,
            source_id=source_id,
            limit=limit,
            include_duplicates=source_id is not None,
        )

    # --- operations ------------------------------------------------------------------

    async def health(
        self,
        *,
        scheduler_heartbeat: datetime | None = None,
        heartbeat_max_age: timedelta = operations.HEARTBEAT_MAX_AGE,
    ) -> HealthReport:
        """The health check of ``/healthz`` (see ``operations.health``); reads, never writes."""
        return await operations.health(
            db=self._db,
            store=self.store,
            clock=self.clock,
            source_ids=[s.id for s in self.settings.sources],
            scheduler_heartbeat=scheduler_heartbeat,
            heartbeat_max_age=heartbeat_max_age,
        )

    async def metrics_snapshot(self) -> MetricsSnapshot:
        """The store's totals for ``/metrics`` (see ``operations.metrics_snapshot``).

        Raises:
            StoreError: the database failed.
        """
        return await operations.metrics_snapshot(
            db=self._db, store=self.store, source_ids=[s.id for s in self.settings.sources]
        )
