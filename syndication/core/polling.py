"""Polling sources: fetch, parse, save the articles, and record each outcome.

``Poller`` polls a batch of sources concurrently. For each source it fetches the
source's URL (conditional on the validators stored last time), parses it in the
parse pool (a feed; or a listing page, then each article page it links to),
saves the articles, and records the outcome with the next poll time decided by
``ingest.decide`` (the server's caching hints, backoff after failures, jitter).
One source's failure never stops the others: it becomes that source's result
and its persisted last error. A byte-sized backlog keeps memory bounded when
parsing is slower than fetching (``BACKLOG_BYTES``).

``Syndication`` holds one ``Poller`` and delegates ``poll`` to it. It is a separate
object rather than a mixin so that what polling needs is visible in its
constructor: the store and a runner for its calls, the fetcher, a runner for the
parse pool (``core.parsing``), the clock, the settings and the jitter.
``Syndication`` still owns those resources (it creates and closes the store, the
fetcher and the parse pool).

Must not: read the wall clock (the clock is given).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from syndication.config import Settings
from syndication.core.batching import WriteBehind
from syndication.core.feeds import DbRunner
from syndication.errors import FetchError, ParseError, SourceError, SyndicationError
from syndication.ingest import decide, pipeline
from syndication.ingest.fetch import Fetcher
from syndication.store import Store
from syndication.types import (
    Clock,
    FetchRequest,
    FetchResult,
    KeyedArticle,
    PollRecord,
    PollResult,
    PollStatus,
    SaveCounts,
    SourceSpec,
    SourceState,
)

log = logging.getLogger(__name__)

R = TypeVar("R")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


class ParseRunner(Protocol):
    """Runs ``fn(content, url=url, **kwargs)`` in the parse pool (``Syndication._parse``).

    A document that takes too long, needs too much memory or kills its worker raises
    ``ParseError`` for ``url``, like one the parser rejects.
    """

    def __call__(
        self, fn: Callable[..., R], content: bytes, /, *, url: str, **kwargs: Any
    ) -> Awaitable[R]: ...


class Poller:
    """Polls sources and records their outcomes; one per ``Syndication``, so that the
    outcomes of every poll in flight are written together (see ``WriteBehind``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        db: DbRunner,
        fetcher: Fetcher,
        parse: ParseRunner,
        clock: Clock,
        jitter: Callable[[], float],
        backlog_bytes: int = 0,
    ) -> None:
        self._settings = settings
        self._store = store
        self._db = db
        self._fetcher = fetcher
        self._parse = parse
        self._clock = clock
        self._jitter = jitter
        # Fetched bytes that may wait for parsing before new sources wait to start.
        self._backlog_bytes = backlog_bytes or max(BACKLOG_BYTES, 2 * settings.fetch.max_bytes)
        # Poll outcomes of many sources at once are written together (see WriteBehind).
        self._records: WriteBehind[PollRecord] = WriteBehind(
            lambda batch: self._db(self._store.record_polls, batch)
        )

    async def poll(
        self,
        specs: Sequence[SourceSpec],
        states: Mapping[str, SourceState],
        *,
        on_result: Callable[[PollResult], None] | None = None,
    ) -> list[PollResult]:
        """Poll ``specs`` once, concurrently, from their stored ``states``; results in order.

        One source's failure never stops the others: each gets its own
        ``PollResult`` and its outcome is persisted as soon as it is known, before
        ``on_result`` is called with it.
        """
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
            if on_result is not None:
                on_result(result)

        await asyncio.gather(*(run(spec) for spec in specs))
        return [results[s.id] for s in specs]

    async def _poll_one(self, spec: SourceSpec, state: SourceState | None, ticket: _Ticket) -> PollResult:
        now = self._clock()
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
            warnings=outcome.warnings,
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
        f = self._settings.fetch
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
        response = await self._fetcher.fetch(
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
        now = self._clock()
        response = await self._fetch_source(spec, state, ticket, FEED_ACCEPT)
        hints = _hints(response.headers, now)
        if response.not_modified:
            return self._outcome(spec, now, SaveCounts(), response.etag, response.last_modified, True, hints)
        doc, keyed = await self._parse(
            pipeline.parse_feed_keyed,
            response.content,
            url=response.url,
            declared_charset=response.charset,
            tz=self._settings.site.tz,
            source_id=spec.id,
            max_html=self._settings.fetch.max_content_html,
        )
        counts = await self._save(spec, keyed, now)
        return self._outcome(
            spec, now, counts, response.etag, response.last_modified, False, hints, doc.ttl, doc.warnings
        )

    async def _poll_html(self, spec: SourceSpec, state: SourceState | None, ticket: _Ticket) -> _Outcome:
        now = self._clock()
        listing = await self._fetch_source(spec, state, ticket, HTML_ACCEPT)
        hints = _hints(listing.headers, now)
        if listing.not_modified:
            return self._outcome(spec, now, SaveCounts(), listing.etag, listing.last_modified, True, hints)
        links, listing_warnings = await self._parse(
            pipeline.listing_links,
            listing.content,
            url=listing.url,
            declared_charset=listing.charset,
            rules=spec.html,
        )
        validators = await self._db(self._store.page_validators, links)
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
            await self._db(self._store.save_page_validators, fresh, now=now)
        warnings = tuple(f"{listing.url}: {w}" for w in listing_warnings) + tuple(errors)
        warnings += _page_warnings(pages)
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
            response = await self._fetcher.fetch(
                FetchRequest(
                    url=url,
                    etag=etag,
                    last_modified=last_modified,
                    allow_private_network=spec.allow_private_network,
                    accept=HTML_ACCEPT,
                    listing=spec.url,
                )
            )
            if response.not_modified:
                return _Page(url=url, not_modified=True)
            ticket.add(len(response.content))
            article, warnings = await self._parse(
                pipeline.parse_page_keyed,
                response.content,
                url=response.url,
                declared_charset=response.charset,
                rules=spec.html,
                tz=self._settings.site.tz,
                source_id=spec.id,
                max_html=self._settings.fetch.max_content_html,
            )
        except (FetchError, ParseError) as exc:
            return _Page(url=url, error=f"{url}: {exc}")
        return _Page(
            url=url,
            article=article,
            etag=response.etag,
            last_modified=response.last_modified,
            warnings=warnings,
        )

    async def _save(self, spec: SourceSpec, keyed: Sequence[KeyedArticle], now: datetime) -> SaveCounts:
        if not keyed:
            return SaveCounts()
        keyed = [_not_in_future(k, now) for k in keyed]
        keep = self._settings.retention.articles
        if keep is not None:
            # What retention deletes is not stored again while a source still lists it:
            # it would come back as new and go out in the next digests.
            oldest = now - keep
            keyed = [k for k in keyed if k.data.published is None or k.data.published >= oldest]
            if not keyed:
                return SaveCounts()
        return await self._db(
            self._store.save_articles, source_id=spec.id, categories=spec.categories, articles=keyed, now=now
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
            max_lower_bound=self._settings.fetch.max_lower_bound,
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
        return spec.interval * (self._settings.service.jitter * self._jitter())


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
    warnings: tuple[str, ...] = ()


def _page_warnings(pages: Sequence[_Page]) -> tuple[str, ...]:
    """The article pages' warnings, each once: with its page, or with how many pages and the
    first of them when several pages say the same ("converted from TCVN3" on every page)."""
    by_warning: dict[str, list[str]] = {}
    for page in pages:
        for warning in page.warnings:
            by_warning.setdefault(warning, []).append(page.url)
    return tuple(
        f"{urls[0]}: {warning}" if len(urls) == 1 else f"{warning} ({len(urls)} pages; first {urls[0]})"
        for warning, urls in by_warning.items()
    )


FUTURE_SKEW = timedelta(minutes=10)
"""A date further ahead than this is a publisher's mistake (often a wrong time zone)."""


def _not_in_future(keyed: KeyedArticle, now: datetime) -> KeyedArticle:
    """Dates in the future are not trusted, so a mis-dated article cannot stay on top of
    every feed and digest: a future ``updated`` becomes ``now``, a future ``published`` is
    dropped, so the store dates the article by when it first saw it (``now``) and marks it
    undated (``Article.dated``), or keeps the date it had. The content hash is the
    parser's, so this stays stable."""
    data = keyed.data
    late = now + FUTURE_SKEW
    published = None if data.published is not None and data.published > late else data.published
    updated = now if data.updated is not None and data.updated > late else data.updated
    if (published, updated) == (data.published, data.updated):
        return keyed
    return KeyedArticle(data=replace(data, published=published, updated=updated), keys=keyed.keys)


def _hints(headers: Mapping[str, str], now: datetime) -> _Hints:
    return _Hints(
        max_age=decide.cache_max_age(headers),
        retry_after=decide.retry_after(headers.get("retry-after"), now=now),
    )
