"""The web app: feeds for readers and republishing portals, pages for people.

``create_app`` wires two parts behind one ASGI callable:

- ``files.FeedFiles``, a small pure-ASGI handler, answers the feed files
  (``/feeds/{name}.rss|.atom|.json``, ``/feeds.opml``, ``/feeds/feed.xsl``) from
  memory, with validators, 304s, gzip and CORS. It comes first because those
  URLs are polled all day and Starlette's routing and responses would cost
  more than the answer itself;
- ``pages.Pages``, a Starlette app, renders the HTML pages and the 404 page;
- ``subscribe.SubscriptionPages`` adds the subscription pages to that app when a
  ``SubscriptionProvider`` is given;
- ``operations`` adds ``/healthz`` and ``/metrics`` when an ``Operations`` is given
  (unless they are served on an address of their own), which also counts the
  answers of ``files``;
- ``proxies.TrustedProxies`` comes before all of them: behind a trusted reverse
  proxy, the client and scheme are the forwarded ones.

Both read what they serve from a ``FeedProvider`` (implemented in ``core``):
feeds are built when articles change, never on a request.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from syndication.types import Channel, FeedDocument, FeedFormat, FeedPage, FeedSpec, HealthReport
from syndication.web.files import FeedFiles
from syndication.web.operations import operations_routes
from syndication.web.pages import SECURITY_HEADERS, Pages
from syndication.web.proxies import ProxyHeader, TrustedProxies
from syndication.web.subscribe import SubscriptionPages, SubscriptionProvider

__all__ = ["FeedProvider", "Operations", "SubscriptionProvider", "WebApp", "create_app"]


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


class Operations(Protocol):
    """What ``/healthz`` and ``/metrics`` need from the rest of the service."""

    @property
    def metrics_content_type(self) -> str:
        """The media type of what ``metrics`` returns."""
        ...

    async def health(self) -> HealthReport:
        """A fresh health check; reports a failing store rather than raising."""
        ...

    async def metrics(self) -> bytes:
        """The metrics, rendered for a scrape."""
        ...

    def observe_feed_request(self, status: int) -> None:
        """Count one answer to a request for a feed file (called on every one: must be cheap)."""
        ...


class WebApp:
    """The ASGI app ``create_app`` returns.

    ``proxies`` first puts the forwarded client and scheme into the scope (when the peer
    is a trusted proxy); ``files`` answers feed files and hands everything else to
    ``pages.app`` (Starlette); ``subscriptions`` holds the subscription routes when
    served.
    """

    def __init__(
        self,
        files: FeedFiles,
        pages: Pages,
        subscriptions: SubscriptionPages | None = None,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self.files = files
        self.pages = pages
        self.subscriptions = subscriptions
        self.proxies = proxies or None

    @property
    def starlette(self) -> Starlette:
        return self.pages.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.proxies is not None:
            self.proxies.resolve(scope)
        await self.files(scope, receive, send)


_ARCHIVE_KEY = re.compile(r"[0-9a-f]{16,64}")


def _archive_endpoint(
    archive: Callable[[int, str], Awaitable[str | None]], pages: Pages
) -> Callable[[Request], Awaitable[Response]]:
    """``/ban-tin/{issue}/{key}``: the page behind a digest's "view in browser" link."""

    async def endpoint(request: Request) -> Response:
        key = str(request.path_params["key"])
        html = await archive(int(request.path_params["issue"]), key) if _ARCHIVE_KEY.fullmatch(key) else None
        if html is None:
            return pages.not_found_response()
        headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600", "X-Robots-Tag": "noindex"}
        return HTMLResponse(html, headers=headers)

    return endpoint


def create_app(
    provider: FeedProvider,
    *,
    templates_dir: Path,
    cache_max_age: int = 300,
    timezone: str = "Asia/Ho_Chi_Minh",
    gzip_cache_size: int = 512,
    subscriptions: SubscriptionProvider | None = None,
    secret: bytes | None = None,
    trusted_proxies: Sequence[str] = (),
    proxy_header: ProxyHeader = "x-forwarded-for",
    clock: Callable[[], float] = time.monotonic,
    archive: Callable[[int, str], Awaitable[str | None]] | None = None,
    operations: Operations | None = None,
    serve_operations: bool = True,
) -> WebApp:
    """The web app serving ``provider``'s feeds and pages, and ``subscriptions``' pages if given.

    ``cache_max_age`` goes into ``Cache-Control`` (seconds); ``timezone`` is the
    site's, for dates shown to people; ``gzip_cache_size`` bounds how many
    documents keep their prepared headers and gzip form.

    For the subscription pages: ``secret`` keys the CSRF tokens (random per process
    when None: forms then expire on a restart, and processes sharing a site need a
    common secret); the provider keeps the rate limits, in the store; ``clock``
    (seconds) times CSRF tokens.

    ``trusted_proxies`` (addresses or networks) are the reverse proxies whose
    ``proxy_header`` (``X-Forwarded-For`` or ``Forwarded``) and ``X-Forwarded-Proto``
    are believed (see ``proxies``).

    ``operations`` counts feed file answers and, unless ``serve_operations`` is False
    (they are served on an address of their own), answers ``/healthz`` and ``/metrics``.

    Raises:
        zoneinfo.ZoneInfoNotFoundError: ``timezone`` is not a known time zone.
        ValueError: a ``trusted_proxies`` entry that is no address.
    """
    proxies = TrustedProxies(trusted_proxies, header=proxy_header)
    pages = Pages(provider, templates_dir=templates_dir, timezone=timezone, cache_max_age=cache_max_age)
    subscription_pages = None
    if subscriptions is not None:
        subscription_pages = SubscriptionPages(
            subscriptions,
            pages=pages,
            secret=secrets.token_bytes(32) if secret is None else secret,
            clock=clock,
        )
        pages.app.router.routes.extend(subscription_pages.routes)
    if archive is not None:
        pages.app.router.routes.append(Route("/ban-tin/{issue:int}/{key}", _archive_endpoint(archive, pages)))
    if operations is not None and serve_operations:
        pages.app.router.routes.extend(operations_routes(operations))
    files = FeedFiles(
        pages.app,
        provider,
        not_found=pages.not_found,
        cache_max_age=cache_max_age,
        cache_size=gzip_cache_size,
        on_response=None if operations is None else operations.observe_feed_request,
    )
    return WebApp(files, pages, subscription_pages, proxies)


def create_operations_app(operations: Operations) -> Starlette:
    """Only ``/healthz`` and ``/metrics`` (everything else 404): what a worker process
    serves for its probes and for Prometheus, which scrapes each process's counters."""
    return Starlette(routes=operations_routes(operations))
