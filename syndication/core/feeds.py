"""Publishing: build feeds from the store when articles change, keep them in memory.

``FeedService`` is what the web app asks for documents (it satisfies
``web.app.FeedProvider`` structurally; core does not import web). Page 1 of every
feed is built at start and rebuilt when the store says its articles changed, so
a request for an unchanged feed does no database work. Older pages are built on
first request and kept until their feed changes. Changes made by other processes
(``syndication fetch`` beside ``syndication serve``) are noticed by ``watch``,
which asks the store one cheap question every ``feeds.refresh``.

Every document built is recorded in the store with its entity-tag: its
``Last-Modified`` is when its bytes last changed, the same in every process and
across restarts (not the newest article date, which a late or back-dated article
does not move). A page 1 whose bytes changed is due for a WebSub ping until the
hub takes it; whichever process with the hub configured builds feeds next sends
the pings due, so changes made while no server ran are announced at the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

from syndication.config import Settings
from syndication.errors import FetchError, SyndicationError
from syndication.feeds import render as feed_render
from syndication.store import DocumentTag, Store
from syndication.types import (
    Article,
    Channel,
    Clock,
    FeedDocument,
    FeedFormat,
    FeedPage,
    FeedSpec,
)

log = logging.getLogger(__name__)

R = TypeVar("R")
FORMATS: tuple[FeedFormat, ...] = ("rss", "atom", "json")
EMPTY_FEED_DATE = datetime(2000, 1, 1, tzinfo=UTC)
"""``updated`` of a feed with no articles: a constant, so its bytes (and ETag) are stable."""
PING_RETRY = timedelta(minutes=5)
"""How long after a WebSub ping failed ``watch`` sends the pings still due again."""
OPML_NAME, OPML_FORMAT = "feeds", "opml"
"""How the OPML list is named among the published documents."""


class DbRunner(Protocol):
    """Runs a store call off the event loop (``Syndication._db``)."""

    def __call__(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Awaitable[R]: ...


Ping = Callable[[str, dict[str, str]], Awaitable[int]]


def channel_of(settings: Settings) -> Channel:
    site = settings.site
    link = site.base_url if site.base_url.endswith("/") else site.base_url + "/"
    return Channel(
        title=site.title,
        link=link,
        description=site.description or site.title,
        language=site.language,
        rights=settings.feeds.rights or f"© {site.title}",
        ttl=settings.feeds.ttl,
        websub_hub=settings.feeds.websub_hub,
    )


def feed_specs(settings: Settings) -> list[FeedSpec]:
    """Every feed we publish: everything, each category, each source."""
    site = settings.site
    specs = [
        FeedSpec(
            name="all", title=site.title, description=site.description or f"Tất cả tin bài của {site.title}"
        )
    ]
    specs += [
        FeedSpec(name=c.slug, title=c.title, description=f"{c.title} – {site.title}", category=c.slug)
        for c in settings.categories
    ]
    specs += [
        FeedSpec(
            name=f"source-{s.id}",
            title=s.title or s.id,
            description=f"Tin bài lấy từ nguồn {s.title or s.id} – {site.title}",
            source_id=s.id,
        )
        for s in settings.sources
    ]
    return specs


class FeedService:
    """Built feed documents for the web app and the static export."""

    def __init__(
        self, settings: Settings, *, store: Store, db: DbRunner, clock: Clock, ping: Ping | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._db = db
        self._clock = clock
        self._ping = ping
        self._ping_again: datetime | None = None
        """When ``watch`` sends the pings still due after a failure; None when none failed."""
        self._channel = channel_of(settings)
        self._specs = feed_specs(settings)
        self._by_name = {spec.name: spec for spec in self._specs}
        self._category_titles = {c.slug: c.title for c in settings.categories}
        self._source_titles = {s.id: s.title or s.id for s in settings.sources}
        self._cache: dict[tuple[str, FeedFormat, int], FeedDocument] = {}
        self._version = -1
        self._lock = asyncio.Lock()
        self._opml = _opml_document(feed_render.render_opml(self._channel, self._specs))
        self._stylesheet = resources.files("syndication.feeds").joinpath("feed.xsl").read_bytes()

    # --- what the web app asks (web.app.FeedProvider) --------------------------------

    def feeds(self) -> Sequence[FeedSpec]:
        return self._specs

    def channel(self) -> Channel:
        return self._channel

    def cached(self, name: str, fmt: FeedFormat, page: int) -> FeedDocument | None:
        return self._cache.get((name, fmt, page))

    async def document(self, name: str, fmt: FeedFormat, page: int) -> FeedDocument | None:
        found = self._cache.get((name, fmt, page))
        if found is not None:
            return found
        spec = self._by_name.get(name)
        if spec is None or page < 1:
            return None
        data = await self._page(spec, page)
        if data is None:
            return None
        built = await self._dated(await asyncio.to_thread(self._render_all, data))
        for doc in built:
            self._cache[(name, doc.format, page)] = doc
        return self._cache.get((name, fmt, page))

    async def latest(self, name: str) -> FeedPage | None:
        spec = self._by_name.get(name)
        return None if spec is None else await self._page(spec, 1)

    def opml(self) -> FeedDocument:
        return self._opml

    def stylesheet(self) -> bytes:
        return self._stylesheet

    # --- building ---------------------------------------------------------------------

    async def start(self) -> None:
        """Build page 1 of every feed (once; later calls only refresh)."""
        async with self._lock:
            if self._version >= 0:
                return
            version = await self._db(self._store.content_version)
            await self._rebuild([spec.name for spec in self._specs])
            (self._opml,) = await self._dated([self._opml])
            self._version = version

    async def refresh(self) -> list[str]:
        """Rebuild the feeds whose articles changed since the last look; returns their names."""
        if self._version < 0:
            await self.start()
            return []
        async with self._lock:
            version, scopes = await self._db(self._store.changed_scopes, since=self._version)
            names = self._names_for(scopes)
            if names:
                await self._rebuild(names)
                log.info("rebuilt feeds %s (store version %d)", ", ".join(names), version)
            self._version = version
        if names:
            await self.ping_pending()
        return names

    async def watch(self) -> None:
        """Send the WebSub pings still due (changes made while no server ran), then refresh
        every ``feeds.refresh`` until cancelled, sending pings that failed again after
        ``PING_RETRY``; a failure is logged, not fatal."""
        interval = self._settings.feeds.refresh.total_seconds()
        try:
            await self.ping_pending()
        except SyndicationError as exc:
            log.warning("could not read the pings due: %s", exc)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
                if self._ping_again is not None and self._clock() >= self._ping_again:
                    await self.ping_pending()
            except SyndicationError as exc:
                log.warning("could not refresh feeds: %s", exc)

    def _names_for(self, scopes: frozenset[str]) -> list[str]:
        names: list[str] = []
        for spec in self._specs:
            if spec.category is not None:
                scope = f"category:{spec.category}"
            elif spec.source_id is not None:
                scope = f"source:{spec.source_id}"
            else:
                scope = "all"
            if scope in scopes:
                names.append(spec.name)
        return names

    async def _rebuild(self, names: Sequence[str]) -> None:
        pages = [await self._page(self._by_name[name], 1) for name in names]
        rendered = await asyncio.to_thread(lambda: [self._render_all(p) for p in pages if p is not None])
        built = await self._dated([doc for docs in rendered for doc in docs])
        changed = set(names)
        # Older pages of a changed feed shift: drop them, they are rebuilt on request.
        for key in [k for k in self._cache if k[0] in changed]:
            del self._cache[key]
        for doc in built:
            self._cache[(doc.name, doc.format, doc.page)] = doc

    async def _dated(self, documents: Sequence[FeedDocument]) -> list[FeedDocument]:
        """``documents`` recorded in the store, each with ``last_modified`` set to when its
        bytes last changed (as any process saw it first)."""
        tags = [_tag(doc) for doc in documents]
        dates = await self._db(self._store.record_documents, tags, now=self._clock())
        return [
            dataclasses.replace(doc, last_modified=dates[tag])
            for doc, tag in zip(documents, tags, strict=True)
        ]

    async def _page(self, spec: FeedSpec, page: int) -> FeedPage | None:
        items = self._settings.feeds.items
        total, articles = await self._db(self._query, spec, items, (page - 1) * items)
        last_page = max(1, math.ceil(total / items))
        if page > last_page:
            return None
        return FeedPage(
            feed=spec,
            page=page,
            last_page=last_page,
            articles=tuple(articles),
            updated=max((a.updated for a in articles), default=EMPTY_FEED_DATE),
            category_titles=self._category_titles,
            source_titles=self._source_titles,
        )

    def _query(self, spec: FeedSpec, limit: int, offset: int) -> tuple[int, list[Article]]:
        """Runs in the store's thread: the count and the page in one hop."""
        total = self._store.count_articles(
            category=spec.category, source_id=spec.source_id, include_duplicates=False
        )
        articles = self._store.list_articles(
            category=spec.category, source_id=spec.source_id, limit=limit, offset=offset
        )
        return total, articles

    def _render_all(self, page: FeedPage) -> list[FeedDocument]:
        return [feed_render.render(fmt, self._channel, page) for fmt in FORMATS]

    async def ping_pending(self) -> int:
        """Tell the WebSub hub of every feed changed since it last heard (in any process,
        also while no server ran); how many pings it took. Without a hub, does nothing.

        A ping the hub refuses stays due; when the hub cannot be reached (or answers 5xx)
        the rest wait too, and ``watch`` tries again after ``PING_RETRY``.
        """
        hub = self._channel.websub_hub
        if self._ping is None or not hub:
            return 0
        due = await self._db(self._store.pending_pings)
        taken: list[DocumentTag] = []
        failed = False
        for document in due:
            if document.name not in self._by_name or document.format not in FORMATS:
                taken.append(document)  # no longer published: nobody to tell
                continue
            topic = feed_render.feed_url(self._channel, document.name, document.format)
            try:
                await self._ping(hub, {"hub.mode": "publish", "hub.url": topic})
            except SyndicationError as exc:
                log.warning("WebSub hub %s did not take the ping for %s: %s", hub, topic, exc)
                failed = True
                if not isinstance(exc, FetchError) or exc.status is None or exc.status >= 500:
                    break  # the hub is down: the others wait for the next try
                continue
            taken.append(document)
        if taken:
            await self._db(self._store.mark_pinged, taken)
        self._ping_again = self._clock() + PING_RETRY if failed else None
        return sum(1 for document in taken if document.name in self._by_name)

    # --- static export ------------------------------------------------------------------

    async def export(self, out: Path) -> list[Path]:
        """Write every page of every feed, the OPML list and the stylesheet under ``out``,
        with the bytes the server would send. Page N > 1 goes to ``<name>.<ext>?page=N``
        (see the README for the web server rule that serves it)."""
        written: list[Path] = []
        folder = out / "feeds"
        folder.mkdir(parents=True, exist_ok=True)
        for spec in self._specs:
            page = 1
            while True:
                data = await self._page(spec, page)
                if data is None:
                    break
                for doc in await self._dated(await asyncio.to_thread(self._render_all, data)):
                    suffix = "" if page == 1 else f"?page={page}"
                    path = folder / f"{spec.name}.{_EXTENSIONS[doc.format]}{suffix}"
                    _write(path, doc.body, doc.last_modified)
                    written.append(path)
                if page >= data.last_page:
                    break
                page += 1
        _write(out / "feeds.opml", self._opml.body, self._opml.last_modified)
        (folder / "feed.xsl").write_bytes(self._stylesheet)
        written += [out / "feeds.opml", folder / "feed.xsl"]
        return written


_EXTENSIONS: dict[FeedFormat, str] = {"rss": "rss", "atom": "atom", "json": "json"}


def _write(path: Path, body: bytes, modified: datetime) -> None:
    """Write a document; its file's mtime is its ``Last-Modified``, so a web server that
    serves the folder (nginx) sends the date ``serve`` sends."""
    path.write_bytes(body)
    stamp = modified.timestamp()
    os.utime(path, (stamp, stamp))


def _tag(document: FeedDocument) -> DocumentTag:
    if document.content_type.startswith("text/x-opml"):  # not a feed: named apart
        return DocumentTag(name=OPML_NAME, format=OPML_FORMAT, page=1, etag=document.etag)
    return DocumentTag(name=document.name, format=document.format, page=document.page, etag=document.etag)


def _opml_document(body: bytes) -> FeedDocument:
    """The OPML list as a servable document (it changes only with the configuration)."""
    return FeedDocument(
        name="feeds",
        format="rss",  # not a feed format; the web app serves it with its own content type
        page=1,
        body=body,
        content_type="text/x-opml; charset=utf-8",
        etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
        last_modified=EMPTY_FEED_DATE,
    )
