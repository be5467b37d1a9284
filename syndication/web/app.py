"""The web app: feeds for readers and republishing portals, pages for people.

``create_app`` wires two parts behind one ASGI callable:

- ``files.FeedFiles``, a small pure-ASGI handler, answers the feed files
  (``/feeds/{name}.rss|.atom|.json``, ``/feeds.opml``, ``/feeds/feed.xsl``) from
  memory, with validators, 304s, gzip and CORS. It comes first because those
  URLs are polled all day and Starlette's routing and responses would cost
  more than the answer itself;
- ``pages.Pages``, a Starlette app, renders the HTML pages and the 404 page.

Both read what they serve from a ``FeedProvider`` (implemented in ``core``):
feeds are built when articles change, never on a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from syndication.types import Channel, FeedDocument, FeedFormat, FeedPage, FeedSpec
from syndication.web.files import FeedFiles
from syndication.web.pages import Pages

__all__ = ["FeedProvider", "WebApp", "create_app"]


class FeedProvider(Protocol):
    """What the web app needs from the rest of the service."""

    def feeds(self) -> Sequence[FeedSpec]:
        """Every published feed, in display order."""
        ...

    def channel(self) -> Channel: ...

    def cached(self, name: str, fmt: FeedFormat, page: int) -> FeedDocument | None:
        """The built document, from memory: no I/O. None when not built yet or unknown."""
        ...

    async def document(self, name: str, fmt: FeedFormat, page: int) -> FeedDocument | None:
        """Build the document on demand (may read the store): used only when ``cached`` missed.

        None when the feed, or that page of it, does not exist.
        """
        ...

    async def latest(self, name: str) -> FeedPage | None:
        """Page 1 of a feed as data, for its page for people. None for an unknown feed."""
        ...

    def opml(self) -> FeedDocument:
        """The OPML list of every feed, built in memory."""
        ...

    def stylesheet(self) -> bytes:
        """The XSL stylesheet that RSS and Atom feeds reference."""
        ...


class WebApp:
    """The ASGI app ``create_app`` returns.

    ``files`` answers feed files and hands everything else to ``pages.app`` (Starlette).
    """

    def __init__(self, files: FeedFiles, pages: Pages) -> None:
        self.files = files
        self.pages = pages

    @property
    def starlette(self) -> Starlette:
        return self.pages.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.files(scope, receive, send)


def create_app(
    provider: FeedProvider,
    *,
    templates_dir: Path,
    cache_max_age: int = 300,
    timezone: str = "Asia/Ho_Chi_Minh",
    gzip_cache_size: int = 512,
) -> WebApp:
    """The web app serving ``provider``'s feeds and pages.

    ``cache_max_age`` goes into ``Cache-Control`` (seconds); ``timezone`` is the
    site's, for dates shown to people; ``gzip_cache_size`` bounds how many
    documents keep their prepared headers and gzip form.

    Raises:
        zoneinfo.ZoneInfoNotFoundError: ``timezone`` is not a known time zone.
    """
    pages = Pages(provider, templates_dir=templates_dir, timezone=timezone, cache_max_age=cache_max_age)
    files = FeedFiles(
        pages.app,
        provider,
        not_found=pages.not_found,
        cache_max_age=cache_max_age,
        cache_size=gzip_cache_size,
    )
    return WebApp(files, pages)
