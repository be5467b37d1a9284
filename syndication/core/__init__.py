"""The one place that wires components together from settings.

``Syndication`` owns the store, the fetcher and the parse pool, and runs the
use-cases the shells (CLI, later the scheduler and web app) call: upgrade the
store, poll sources, list sources and articles. Components get plain
arguments, never the settings object.

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
import multiprocessing
import os
import random
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from syndication import text
from syndication.config import Settings
from syndication.core import operations
from syndication.core.batching import WriteBehind
from syndication.core.digests import DigestService
from syndication.core.feeds import FeedService
from syndication.core.service import NODE_EXPIRY, DigestRun
from syndication.core.subscriptions import SubscriptionService
from syndication.errors import FetchError, ParseError, SourceError, SyndicationError
from syndication.ingest import decide, pipeline
from syndication.ingest.fetch import Fetcher, HttpFetcher
from syndication.mail.send import Transport
from syndication.metrics import Metrics
from syndication.store import Pruned, Store, SubscriberCounts
from syndication.types import (
    Article,
    Clock,
    DigestIssue,
    FetchRequest,
    FetchResult,
    HealthReport,
    KeyedArticle,
    MetricsSnapshot,
    NodeInfo,
    PollRecord,
    PollResult,
    PollStatus,
    SaveCounts,
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

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


def utc_now() -> datetime:
    """The wall clock, aware UTC: the default ``Clock``."""
    return datetime.now(UTC)


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
        parse_executor: Executor | None = None,
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
        self._parse_executor = parse_executor
        self._own_parse_executor = parse_executor is None
        sqlite = settings.storage.url.startswith("sqlite")
        self._db_executor = ThreadPoolExecutor(max_workers=1 if sqlite else 4, thread_name_prefix="store")
        self._started = False
        self._transport_factory = transport_factory
        # Fetched bytes that may wait for parsing before new sources wait to start.
        self._backlog_bytes = backlog_bytes or max(BACKLOG_BYTES, 2 * settings.fetch.max_bytes)
        self._feed_service: FeedService | None = None
        self._digest_service: DigestService | None = None
        self._subscription_service: SubscriptionService | None = None
        # Poll outcomes of many sources at once are written together (see WriteBehind).
        self._records: WriteBehind[PollRecord] = WriteBehind(
            lambda batch: self._db(self.store.record_polls, batch)
        )
        self.metrics = Metrics()

    # --- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Syndication:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._fetcher is not None and self._own_fetcher and isinstance(self._fetcher, HttpFetcher):
            await self._fetcher.aclose()
        if self._parse_executor is not None and self._own_parse_executor:
            self._parse_executor.shutdown(wait=True, cancel_futures=True)
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

    async def _parse(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        executor = self._parse_executor
        if executor is None and self._own_parse_executor:
            executor = self._parse_executor = _make_parse_executor(self.settings.fetch.parse_workers)
            self._own_parse_executor = True
        if executor is None:
            return await asyncio.to_thread(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, partial(fn, *args, **kwargs))

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
        results: dict[str, PollResult] = {}
        backlog = _Backlog(limit=self._backlog_bytes)

        async def run(spec: SourceSpec) -> None:
            # A source starts only while fetched-but-unsaved bytes leave room, so memory
            # stays bounded when parsing is slower than fetching. Sized in bytes rather
            # than sources, so that sources stuck on a slow host (waiting for its fetch
            # slots, holding a small reservation) rarely keep others from starting.
            ticket = await backlog.ticket()
            try:
                result = await self._poll_one(spec, states.get(spec.id), ticket)
            finally:
                await ticket.release()
            results[spec.id] = result
            self.metrics.observe_poll(spec.id, result.status, result.counts.new)
            if on_result is not None:
                on_result(result)

        await asyncio.gather(*(run(spec) for spec in specs))
        if self._feed_service is not None and any(r.status in ("new", "updated") for r in results.values()):
            await self._feed_service.refresh()
        return [results[s.id] for s in specs]

    # --- subscribers and digests -------------------------------------------------------

    async def upsert_subscribers(self, rows: Sequence[SubscriberData]) -> SubscriberCounts:
        await self.start()
        return await self._db(self.store.upsert_subscribers, rows, now=self.clock())

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
    ) -> tuple[DigestIssue, list[tuple[str, int, int, int]]]:
        """The issue (default: the latest of ``name``) and its per-branch counts.

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
            self._feed_service = FeedService(self.settings, store=self.store, db=self._db, ping=ping)
        await self._feed_service.start()
        return self._feed_service

    async def _poll_one(self, spec: SourceSpec, state: SourceState | None, ticket: _Ticket) -> PollResult:
        now = self.clock()
        errors_before = state.error_count if state else 0
        try:
            if spec.kind == "html":
                outcome = await self._poll_html(spec, state, ticket)
            else:
                outcome = await self._poll_feed(spec, state, ticket)
        except SyndicationError as exc:
            return await self._record_failure(spec, now, errors_before + 1, exc)
        except Exception as exc:  # a bug must not stop the other sources; keep its traceback
            log.exception("internal error while polling source %s", spec.id)
            wrapped = SourceError(f"internal error: {type(exc).__name__}: {exc}", source_id=spec.id)
            return await self._record_failure(spec, now, errors_before + 1, wrapped)
        record = PollRecord(
            source_id=spec.id,
            attempted=now,
            ok=True,
            next_attempt=outcome.next_attempt,
            etag=outcome.etag,
            last_modified=outcome.last_modified,
            keep_validators=outcome.not_modified,
        )
        await self._record(record)
        c = outcome.counts
        status: PollStatus
        if outcome.not_modified:
            status = "not_modified"
        elif c.new:
            status = "new"
        elif c.updated:
            status = "updated"
        else:
            status = "unchanged"
        for warning in outcome.warnings:
            log.warning("source %s: %s", spec.id, warning)
        return PollResult(
            source_id=spec.id,
            status=status,
            counts=c,
            warnings=outcome.warnings,
            next_attempt=outcome.next_attempt,
        )

    async def _record_failure(
        self, spec: SourceSpec, now: datetime, error_count: int, exc: SyndicationError
    ) -> PollResult:
        f = self.settings.fetch
        not_before = exc.retry_after if isinstance(exc, FetchError) else None
        next_attempt = decide.next_after_failure(
            now=now,
            error_count=error_count,
            interval=spec.interval,
            backoff_cap=f.backoff_cap,
            not_before=not_before,
            max_lower_bound=f.max_lower_bound,
        ) + self._spread(spec)
        message = str(exc)
        log.warning("source %s failed (%d in a row): %s", spec.id, error_count, message)
        record = PollRecord(
            source_id=spec.id,
            attempted=now,
            ok=False,
            next_attempt=next_attempt,
            error=message,
            error_count=error_count,
            keep_validators=True,
        )
        await self._record(record)
        return PollResult(source_id=spec.id, status="error", error=message, next_attempt=next_attempt)

    async def _record(self, record: PollRecord) -> None:
        """Persist a poll's outcome; returns once it is in the store."""
        await self._records.add(record)

    async def _fetch_source(
        self, spec: SourceSpec, state: SourceState | None, ticket: _Ticket, accept: str
    ) -> FetchResult:
        """The source's own URL (feed or listing page), conditional on what we last saw."""
        response = await self.fetcher.fetch(
            FetchRequest(
                url=spec.url,
                etag=state.etag if state else None,
                last_modified=state.last_modified if state else None,
                allow_private_network=spec.allow_private_network,
                accept=accept,
            )
        )
        ticket.add(len(response.content))
        return response

    async def _poll_feed(self, spec: SourceSpec, state: SourceState | None, ticket: _Ticket) -> _Outcome:
        now = self.clock()
        response = await self._fetch_source(spec, state, ticket, FEED_ACCEPT)
        hints = _hints(response.headers, now)
        if response.not_modified:
            return self._outcome(spec, now, SaveCounts(), response.etag, response.last_modified, True, hints)
        doc, keyed = await self._parse(
            pipeline.parse_feed_keyed,
            response.content,
            url=response.url,
            declared_charset=response.charset,
            tz=self.settings.site.tz,
            source_id=spec.id,
        )
        counts = await self._save(spec, keyed, now)
        return self._outcome(
            spec, now, counts, response.etag, response.last_modified, False, hints, doc.ttl, doc.warnings
        )

    async def _poll_html(self, spec: SourceSpec, state: SourceState | None, ticket: _Ticket) -> _Outcome:
        now = self.clock()
        listing = await self._fetch_source(spec, state, ticket, HTML_ACCEPT)
        hints = _hints(listing.headers, now)
        if listing.not_modified:
            return self._outcome(spec, now, SaveCounts(), listing.etag, listing.last_modified, True, hints)
        links = await self._parse(
            pipeline.listing_links,
            listing.content,
            url=listing.url,
            declared_charset=listing.charset,
            rules=spec.html,
        )
        validators = await self._db(self.store.page_validators, links)
        pages = await asyncio.gather(
            *(self._fetch_page(spec, link, validators.get(link), ticket) for link in links)
        )
        keyed = [p.article for p in pages if p.article is not None]
        errors = [p.error for p in pages if p.error is not None]
        unchanged = sum(1 for p in pages if p.not_modified)
        if links and errors and not keyed and not unchanged:
            raise SourceError(f"all {len(links)} article pages failed; first: {errors[0]}", source_id=spec.id)
        counts = await self._save(spec, keyed, now)
        counts = SaveCounts(new=counts.new, updated=counts.updated, unchanged=counts.unchanged + unchanged)
        fresh = [(p.url, p.etag, p.last_modified) for p in pages if p.article is not None]
        if fresh:
            await self._db(self.store.save_page_validators, fresh, now=now)
        warnings = tuple(errors)
        if not links:
            warnings += (f"no article links found on {listing.url}",)
        return self._outcome(
            spec, now, counts, listing.etag, listing.last_modified, False, hints, None, warnings
        )

    async def _fetch_page(
        self, spec: SourceSpec, url: str, validators: tuple[str | None, str | None] | None, ticket: _Ticket
    ) -> _Page:
        etag, last_modified = validators or (None, None)
        try:
            response = await self.fetcher.fetch(
                FetchRequest(
                    url=url,
                    etag=etag,
                    last_modified=last_modified,
                    allow_private_network=spec.allow_private_network,
                    accept=HTML_ACCEPT,
                )
            )
            if response.not_modified:
                return _Page(url=url, not_modified=True)
            ticket.add(len(response.content))
            article = await self._parse(
                pipeline.parse_page_keyed,
                response.content,
                url=response.url,
                declared_charset=response.charset,
                rules=spec.html,
                tz=self.settings.site.tz,
                source_id=spec.id,
            )
        except (FetchError, ParseError) as exc:
            return _Page(url=url, error=f"{url}: {exc}")
        return _Page(url=url, article=article, etag=response.etag, last_modified=response.last_modified)

    async def _save(self, spec: SourceSpec, keyed: Sequence[KeyedArticle], now: datetime) -> SaveCounts:
        if not keyed:
            return SaveCounts()
        keyed = [_not_in_future(k, now) for k in keyed]
        keep = self.settings.retention.articles
        if keep is not None:
            # What retention deletes is not stored again while a source still lists it:
            # it would come back as new and go out in the next digests.
            oldest = now - keep
            keyed = [k for k in keyed if k.data.published is None or k.data.published >= oldest]
            if not keyed:
                return SaveCounts()
        return await self._db(
            self.store.save_articles, source_id=spec.id, categories=spec.categories, articles=keyed, now=now
        )

    def _outcome(
        self,
        spec: SourceSpec,
        now: datetime,
        counts: SaveCounts,
        etag: str | None,
        last_modified: str | None,
        not_modified: bool,
        hints: _Hints,
        ttl: timedelta | None = None,
        warnings: tuple[str, ...] = (),
    ) -> _Outcome:
        next_attempt = decide.next_after_success(
            now=now,
            interval=spec.interval,
            ttl=ttl,
            max_age=hints.max_age,
            not_before=hints.retry_after,
            max_lower_bound=self.settings.fetch.max_lower_bound,
        ) + self._spread(spec)
        return _Outcome(
            counts=counts,
            etag=etag,
            last_modified=last_modified,
            not_modified=not_modified,
            next_attempt=next_attempt,
            warnings=warnings,
        )

    def _spread(self, spec: SourceSpec) -> timedelta:
        """A random part of ``service.jitter`` of the interval, added to each next poll, so
        sources configured together drift apart instead of all polling at once."""
        return spec.interval * (self.settings.service.jitter * self._jitter())

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
        """Delete what ``[retention]`` no longer keeps."""
        await self.start()
        now = self.clock()
        keep = self.settings.retention
        pruned = await self._db(
            self.store.prune,
            articles_before=now - keep.articles if keep.articles else None,
            deliveries_before=now - keep.deliveries if keep.deliveries else None,
            nodes_before=now - NODE_EXPIRY,
        )
        log.info(
            "clean-up: %d articles, %d deliveries (%d issues kept as totals), %d page validators deleted",
            pruned.articles,
            pruned.deliveries,
            pruned.issues_summarised,
            pruned.page_validators,
        )
        if pruned.articles and self._feed_service is not None:
            await self._feed_service.refresh()
        return pruned

    async def heartbeat(self, role: str, started: datetime) -> None:
        await self._db(self.store.heartbeat, owner=self.owner, role=role, started=started, now=self.clock())

    async def leave(self) -> None:
        """Forget this process in the store (a clean stop)."""
        await self._db(self.store.remove_node, self.owner)

    async def nodes(self) -> list[NodeInfo]:
        await self.start()
        return await self._db(self.store.list_nodes)

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
            self.store.list_articles, category=category, search=key, source_id=source_id, limit=limit
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


BACKLOG_BYTES = 64 * 1024 * 1024
"""Fetched bytes that may wait to be parsed and saved before new sources wait to start."""
SOURCE_RESERVE = 1024 * 1024
"""What a source holds of the backlog from its start, before we know its size."""


class _Backlog:
    """Bytes fetched but not yet parsed and saved, over the sources of one poll.

    Each source reserves ``SOURCE_RESERVE`` when it starts and adds what it fetched;
    a source starts only while the total leaves room for it (or nothing is in
    progress, so one document larger than the limit still gets through).
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._changed = asyncio.Condition()

    async def ticket(self) -> _Ticket:
        """Wait for room, then reserve a share for one source."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.size == 0 or self.size + SOURCE_RESERVE <= self.limit)
            self.size += SOURCE_RESERVE
        return _Ticket(self, SOURCE_RESERVE)

    async def _release(self, size: int) -> None:
        async with self._changed:
            self.size -= size
            self._changed.notify_all()


class _Ticket:
    """One source's share of the backlog, given back when the source is done."""

    def __init__(self, backlog: _Backlog, reserved: int) -> None:
        self._backlog = backlog
        self._size = reserved

    def add(self, size: int) -> None:
        self._size += size
        self._backlog.size += size

    async def release(self) -> None:
        size, self._size = self._size, 0
        await self._backlog._release(size)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Hints:
    max_age: timedelta | None
    retry_after: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    counts: SaveCounts
    etag: str | None
    last_modified: str | None
    not_modified: bool
    next_attempt: datetime
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Page:
    url: str
    article: KeyedArticle | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    error: str | None = None


FUTURE_SKEW = timedelta(minutes=10)
"""A date further ahead than this is a publisher's mistake (often a wrong time zone)."""


def _not_in_future(keyed: KeyedArticle, now: datetime) -> KeyedArticle:
    """Dates in the future become ``now``, so a mis-dated article cannot stay on top of
    every feed and digest; the content hash is the parser's, so this stays stable."""
    data = keyed.data
    late = now + FUTURE_SKEW
    published = now if data.published is not None and data.published > late else data.published
    updated = now if data.updated is not None and data.updated > late else data.updated
    if (published, updated) == (data.published, data.updated):
        return keyed
    return KeyedArticle(data=replace(data, published=published, updated=updated), keys=keyed.keys)


def _hints(headers: Mapping[str, str], now: datetime) -> _Hints:
    return _Hints(
        max_age=decide.cache_max_age(headers),
        retry_after=decide.retry_after(headers.get("retry-after"), now=now),
    )


def _make_parse_executor(workers: int) -> Executor | None:
    """A process pool for parsing, or ``None`` to parse in a thread (``parse_workers = 1``
    or a single CPU). The pool's processes start from a forkserver that has already
    imported the parsers, so starting one is cheap and never forks our threads."""
    count = workers or os.cpu_count() or 1
    if count <= 1:
        return None
    context = multiprocessing.get_context("forkserver")
    # The fork server imports the parsers once; workers forked from it share those pages.
    with contextlib.suppress(RuntimeError, ValueError):
        context.set_forkserver_preload(list(pipeline.PARSER_MODULES))
    # The initializer lives in the pipeline module the workers load anyway: one defined
    # here would make every worker import all of core (the store, mail, web templates...).
    return ProcessPoolExecutor(max_workers=count, mp_context=context, initializer=pipeline.worker_init)
