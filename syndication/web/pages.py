"""Pages for people: the list of feeds (``/``), one page per feed (``/feeds/{name}/``), errors.

Jinja2 templates from the site's ``templates/`` folder, in Vietnamese, with
autoescaping on. Article bodies are never shown, only titles, summaries as
text, dates and links to ``http(s)`` addresses, so nothing a source sent can run
here; the Content-Security-Policy forbids scripts besides.

Links between pages are relative (the site may live under a path), the feed
addresses shown for copying are absolute, from ``Channel.link``.

Must not: build feeds (the provider has them) or read the store itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from syndication.errors import SyndicationError
from syndication.text import vietnamese_date
from syndication.types import Article, Channel, FeedFormat, FeedSpec
from syndication.web.errors import RETRY_AFTER_SECONDS, error_status

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from syndication.web.app import FeedProvider

__all__ = [
    "ALL_FEED",
    "FORMAT_LABELS",
    "MEDIA_TYPES",
    "SECURITY_HEADERS",
    "FeedLink",
    "FeedLinks",
    "Item",
    "Pages",
    "feed_links",
    "vietnamese_datetime",
]

logger = logging.getLogger(__name__)

ALL_FEED = "all"
"""The feed of everything: the one announced on the index page."""

MEDIA_TYPES: dict[FeedFormat, str] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
FORMAT_LABELS: dict[FeedFormat, str] = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Content-Type-Options": "nosniff",
}


def vietnamese_datetime(moment: datetime, zone: tzinfo) -> str:
    """``moment`` as people in ``zone`` read it: ``Thứ Sáu, 27/11/2026 08:30``.

    Raises:
        ValueError: ``moment`` is naive.
    """
    return vietnamese_date(moment, zone, with_time=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedLink:
    """One format of one feed, as a page shows and announces it."""

    format: FeedFormat
    label: str
    """``RSS``, ``Atom``, ``JSON Feed``."""
    media_type: str
    href: str
    """Absolute, from ``Channel.link``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedLinks:
    """A feed with its three addresses and the relative path of its page (from the site root)."""

    feed: FeedSpec
    links: tuple[FeedLink, ...]
    page: str
    """``feeds/<name>/``"""


def feed_links(channel: Channel, feed: FeedSpec) -> FeedLinks:
    """The addresses of ``feed`` on the site ``channel`` describes."""
    name = quote(feed.name, safe="")
    links = tuple(
        FeedLink(
            format=format_,
            label=FORMAT_LABELS[format_],
            media_type=media_type,
            href=f"{channel.link}feeds/{name}.{format_}",
        )
        for format_, media_type in MEDIA_TYPES.items()
    )
    return FeedLinks(feed=feed, links=links, page=f"feeds/{name}/")


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """An article as the feed page lists it: text only, a link only when it is http(s)."""

    title: str
    url: str | None
    published: str
    """In Vietnamese, in the site's time zone."""
    published_iso: str
    summary: str
    source: str


def _item(article: Article, source_titles: Mapping[str, str], zone: tzinfo) -> Item:
    url = article.url if article.url and article.url.startswith(("https://", "http://")) else None
    return Item(
        title=article.title,
        url=url,
        published=vietnamese_datetime(article.published, zone),
        published_iso=article.published.isoformat(),
        summary=article.summary,
        source=source_titles.get(article.source_id, article.source_id),
    )


class Pages:
    """The HTML side of the web app, as a Starlette app (``.app``) and a 404 ASGI app (``.not_found``)."""

    def __init__(
        self,
        provider: FeedProvider,
        *,
        templates_dir: Path,
        timezone: str,
        cache_max_age: int,
    ) -> None:
        self.provider = provider
        self.zone = ZoneInfo(timezone)
        self.cache_control = f"public, max-age={cache_max_age}"
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.app = Starlette(
            routes=[
                Route("/", self.index, methods=["GET"]),
                Route("/feeds/{name}/", self.feed, methods=["GET"]),
                Route("/feeds/{name}", self.feed_without_slash, methods=["GET"]),
            ],
            exception_handlers={404: self._not_found_handler, SyndicationError: self._error_handler},
        )
        # A path that matches nothing is not found; a slash added by guessing would turn an
        # unknown feed file (/feeds/x.rss) into a redirect to a page that does not exist.
        self.app.router.redirect_slashes = False

    # -- routes ---------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        channel = self.provider.channel()
        feeds = [feed_links(channel, feed) for feed in self.provider.feeds()]
        announced = next((f for f in feeds if f.feed.name == ALL_FEED), feeds[0] if feeds else None)
        return self._page(
            "index.html",
            channel=channel,
            feeds=feeds,
            alternates=_alternates(announced),
            home="./",
            opml="feeds.opml",
        )

    async def feed(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        latest = await self.provider.latest(name)
        if latest is None:
            return self.not_found_response()
        channel = self.provider.channel()
        links = feed_links(channel, latest.feed)
        items = [_item(article, latest.source_titles, self.zone) for article in latest.articles]
        return self._page(
            "feed.html",
            channel=channel,
            feed=links,
            items=items,
            last_page=latest.last_page,
            updated=vietnamese_datetime(latest.updated, self.zone),
            alternates=_alternates(links),
            home="../../",
        )

    async def feed_without_slash(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        if any(feed.name == name for feed in self.provider.feeds()):
            return RedirectResponse(f"{quote(name, safe='')}/", status_code=301)
        return self.not_found_response()

    # -- errors ---------------------------------------------------------------------------

    def not_found_response(self) -> Response:
        return self._error_page(
            404,
            heading="Không tìm thấy trang",
            message="Địa chỉ này không có trên trang. Danh sách tất cả nguồn tin có ở trang chủ.",
        )

    async def not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An ASGI app that answers the 404 page, whatever was asked."""
        await self.not_found_response()(scope, receive, send)

    async def _not_found_handler(self, request: Request, exc: Exception) -> Response:
        return self.not_found_response()

    async def _error_handler(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SyndicationError)
        status = error_status(exc)
        logger.warning("%s: %s", request.url.path, exc)
        response = self._error_page(
            status,
            heading="Trang tạm thời không hiển thị được",
            message="Máy chủ đang gặp sự cố. Xin vui lòng thử lại sau ít phút.",
        )
        if status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    def _error_page(self, status: int, *, heading: str, message: str) -> Response:
        channel = self.provider.channel()
        response = self._page(
            "error.html",
            status=status,
            channel=channel,
            heading=heading,
            message=message,
            alternates=(),
            home=channel.link,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- rendering ------------------------------------------------------------------------

    def _page(self, template: str, *, status: int = 200, **context: object) -> Response:
        html = self.templates.get_template(template).render(**context)
        headers = {**SECURITY_HEADERS, "Cache-Control": self.cache_control}
        return HTMLResponse(html, status_code=status, headers=headers)


def _alternates(feed: FeedLinks | None) -> Sequence[dict[str, str]]:
    if feed is None:
        return ()
    return [
        {"type": link.media_type, "title": f"{feed.feed.title} ({link.label})", "href": link.href}
        for link in feed.links
    ]
