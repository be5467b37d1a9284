"""Publishing: build feeds from the store when articles change, keep them in memory.

``FeedService`` is what the web app asks for documents (it satisfies
``web.app.FeedProvider`` structurally; core does not import web). Page 1 of every
feed is built at start and rebuilt when the store says its articles changed, so
a request for an unchanged feed does no database work. Older pages are built on
first request and kept until their feed changes. Changes made by other processes
(``syndication fetch`` beside ``syndication serve``) are noticed by ``watch``,
which asks the store one cheap question every ``feeds.refresh``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

from syndication.config import Settings
from syndication.errors import SyndicationError
from syndication.feeds import render as feed_render
from syndication.store import Store
from syndication.types import (
    Article,
    Channel,
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

    def __init__(self, settings: Settings, *, store: Store, db: DbRunner, ping: Ping | None = None) -> None:
        self._settings = settings
        self._store = store
        self._db = db
        self._ping = ping
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
        built = await asyncio.to_thread(self._render_all, data)
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
        if names and self._ping is not None and self._channel.websub_hub:
            await self._ping_hub(self._ping, self._channel.websub_hub, names)
        return names

    async def watch(self) -> None:
        """Refresh every ``feeds.refresh`` until cancelled; a failure is logged, not fatal."""
        interval = self._settings.feeds.refresh.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
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
        built = await asyncio.to_thread(lambda: [self._render_all(p) for p in pages if p is not None])
        changed = set(names)
        # Older pages of a changed feed shift: drop them, they are rebuilt on request.
        for key in [k for k in self._cache if k[0] in changed]:
            del self._cache[key]
        for docs in built:
            for doc in docs:
                self._cache[(doc.name, doc.format, doc.page)] = doc

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

    async def _ping_hub(self, ping: Ping, hub: str, names: Sequence[str]) -> None:
        for name in names:
            for fmt in FORMATS:
                topic = feed_render.feed_url(self._channel, name, fmt)
                try:
                    await ping(hub, {"hub.mode": "publish", "hub.url": topic})
                except SyndicationError as exc:
                    log.warning("WebSub hub %s did not take the ping for %s: %s", hub, topic, exc)

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
                for doc in await asyncio.to_thread(self._render_all, data):
                    suffix = "" if page == 1 else f"?page={page}"
                    path = folder / f"{spec.name}.{_EXTENSIONS[doc.format]}{suffix}"
                    path.write_bytes(doc.body)
                    written.append(path)
                if page >= data.last_page:
                    break
                page += 1
        for path, body in ((out / "feeds.opml", self._opml.body), (folder / "feed.xsl", self._stylesheet)):
            path.write_bytes(body)
            written.append(path)
        return written


_EXTENSIONS: dict[FeedFormat, str] = {"rss": "rss", "atom": "atom", "json": "json"}


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
