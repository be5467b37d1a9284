"""Feed files over HTTP: ``/feeds/{name}.rss|.atom|.json``, ``/feeds.opml``, ``/feeds/feed.xsl``.

A pure ASGI handler in front of the Starlette app. Feeds are polled often, by
readers and by portals that republish them, so a request must cost little: it
looks the document up in memory (``FeedProvider.cached``), picks the identity
or the gzip form, and answers 304 or 200 with headers prepared once per
document. Only a miss (an old page, a feed not built yet) awaits
``FeedProvider.document``. Everything else goes on to the wrapped app.
Each answer's status is handed to ``on_response`` when given (the
``/metrics`` counter), a plain call: this module knows nothing of metrics.

The prepared headers and the gzip form live in a bounded LRU keyed by
entity-tag: a document is compressed once, when a client first asks for gzip,
and its gzip form carries its own tag (``"<tag>-gz"``) so that caches never
hand one coding out for the other.

Must not: render templates, compress per request, or read the store itself.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from syndication.errors import SyndicationError
from syndication.types import FeedDocument, FeedFormat
from syndication.web.conditional import (
    BadPageError,
    accepts_gzip,
    etag_matches,
    gzip_etag,
    http_date,
    modified_since,
    parse_page,
)
from syndication.web.errors import RETRY_AFTER_SECONDS, error_status

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from syndication.web.app import FeedProvider

__all__ = [
    "FEED_FORMATS",
    "FEED_PREFIX",
    "OPML_PATH",
    "STYLESHEET_CONTENT_TYPE",
    "STYLESHEET_PATH",
    "FeedFiles",
    "feed_file",
]

logger = logging.getLogger(__name__)

FEED_PREFIX = "/feeds/"
OPML_PATH = "/feeds.opml"
STYLESHEET_PATH = "/feeds/feed.xsl"
STYLESHEET_CONTENT_TYPE = "text/xsl; charset=utf-8"
FEED_FORMATS: dict[str, FeedFormat] = {"rss": "rss", "atom": "atom", "json": "json"}
"""File extension -> format; each format's extension is its own name."""

GZIP_LEVEL = 9
"""Compression happens once per document, so it may as well be thorough."""

Headers = tuple[tuple[bytes, bytes], ...]

_CORS: Headers = (
    (b"access-control-allow-origin", b"*"),
    # ETag is not a CORS-safelisted response header: scripts polling a feed need to read it.
    (b"access-control-expose-headers", b"ETag"),
)
_PREFLIGHT: Headers = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-max-age", b"86400"),
)
_ALLOW = b"GET, HEAD, OPTIONS"

_TEXT_BAD_PAGE = (
    "Số trang không hợp lệ: page phải là số nguyên từ 1 trở lên.\n"
    "Invalid page: page must be an integer of at least 1.\n"
)
_TEXT_METHOD = "Phương thức không được hỗ trợ.\nMethod not allowed.\n"
_TEXT_ERROR = {
    503: "Máy chủ đang tạm bận, vui lòng thử lại sau.\nService unavailable, please retry later.\n",
    500: "Lỗi máy chủ.\nInternal server error.\n",
}


def feed_file(path: str) -> tuple[str, FeedFormat] | None:
    """The feed name and format that ``path`` asks for, or None when it is no feed file."""
    if not path.startswith(FEED_PREFIX):
        return None
    name, _, extension = path[len(FEED_PREFIX) :].rpartition(".")
    format_ = FEED_FORMATS.get(extension)
    if format_ is None or not name or "/" in name:
        return None
    return name, format_


@dataclass(frozen=True, slots=True)
class _Variant:
    """One content coding of a document: its body and the headers of a 200 and of a 304."""

    body: bytes
    ok_headers: Headers
    not_modified_headers: Headers


class _Representation:
    """A document as served: its validators, the prepared identity form, the gzip form once asked for."""

    __slots__ = (
        "_cache_control",
        "body",
        "content_type",
        "etags",
        "gzip",
        "gzip_etag",
        "identity",
        "last_modified",
        "last_modified_header",
        "source",
    )

    def __init__(
        self,
        *,
        source: object,
        body: bytes,
        content_type: str,
        etag: str,
        last_modified: datetime | None,
        cache_control: bytes,
    ) -> None:
        self.source = source
        """What it was prepared from (a ``FeedDocument``, the stylesheet bytes)."""
        self.body = body
        self.content_type = content_type
        self.last_modified = last_modified
        self.last_modified_header = None if last_modified is None else http_date(last_modified).encode()
        self.gzip_etag = gzip_etag(etag)
        self.etags = frozenset({_opaque(etag), _opaque(self.gzip_etag)})
        """Both forms' tags, as ``If-None-Match`` may name either of them."""
        self._cache_control = cache_control
        self.identity = self.variant(body, etag, coding=None)
        self.gzip: _Variant | None = None

    def variant(self, body: bytes, etag: str, *, coding: bytes | None) -> _Variant:
        validators = [(b"etag", etag.encode())]
        if self.last_modified_header is not None:
            validators.append((b"last-modified", self.last_modified_header))
        caching = [(b"cache-control", self._cache_control), (b"vary", b"Accept-Encoding")]
        ok = [
            (b"content-type", self.content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *validators,
            *caching,
            *([] if coding is None else [(b"content-encoding", coding)]),
            *_CORS,
            (b"x-content-type-options", b"nosniff"),
        ]
        return _Variant(body=body, ok_headers=tuple(ok), not_modified_headers=(*validators, *caching, *_CORS))


def _opaque(etag: str) -> bytes:
    """The quoted part of an entity-tag, for the weak comparison."""
    return etag.removeprefix("W/").encode()


class FeedFiles:
    """ASGI middleware: answers feed files from memory and passes every other request to ``app``.

    ``not_found`` answers a feed file that does not exist (it gets a CORS header added).
    ``on_response`` is called with the status of every answer this handler gives.
    ``compressions`` counts the documents compressed so far.
    """

    def __init__(
        self,
        app: ASGIApp,
        provider: FeedProvider,
        *,
        not_found: ASGIApp,
        cache_max_age: int,
        cache_size: int = 512,
        on_response: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.on_response = on_response
        self.provider = provider
        self.not_found = not_found
        self.compressions = 0
        self._cache_control = f"public, max-age={cache_max_age}".encode()
        self._cache: OrderedDict[str, _Representation] = OrderedDict()
        self._cache_size = cache_size
        self._stylesheet: _Representation | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/feeds"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        feed = None
        if path not in (OPML_PATH, STYLESHEET_PATH):
            feed = feed_file(path)
            if feed is None:
                await self.app(scope, receive, send)
                return

        status = await self._handle(path, feed, scope, receive, send)
        if self.on_response is not None:
            self.on_response(status)

    async def _handle(
        self, path: str, feed: tuple[str, FeedFormat] | None, scope: Scope, receive: Receive, send: Send
    ) -> int:
        """Answer a request for a feed file; the status answered."""
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            return await self._other_method(method, send)
        try:
            if feed is not None:
                representation = await self._feed(*feed, scope["query_string"])
            elif path == OPML_PATH:
                representation = self._representation(self.provider.opml())
            else:
                representation = self._stylesheet_file()
        except BadPageError:
            await _send_text(send, 400, _TEXT_BAD_PAGE, _CORS)
            return 400
        except SyndicationError as exc:
            status = error_status(exc)
            logger.warning("%s: %s", path, exc)
            retry = ((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),) if status == 503 else ()
            await _send_text(send, status, _TEXT_ERROR.get(status, _TEXT_ERROR[500]), (*_CORS, *retry))
            return status
        if representation is None:
            await self.not_found(scope, receive, _with_headers(send, _CORS))
            return 404
        return await self._answer(representation, scope, send)

    async def _feed(self, name: str, format_: FeedFormat, query_string: bytes) -> _Representation | None:
        page = parse_page(query_string)
        document = self.provider.cached(name, format_, page)
        if document is None:
            document = await self.provider.document(name, format_, page)
            if document is None:
                return None
        return self._representation(document)

    async def _answer(self, representation: _Representation, scope: Scope, send: Send) -> int:
        if_none_match = if_modified_since = accept_encoding = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value if if_none_match is None else if_none_match + b"," + value
            elif name == b"if-modified-since":
                if_modified_since = value
            elif name == b"accept-encoding":
                accept_encoding = value

        variant = representation.identity
        if accept_encoding is not None and accepts_gzip(accept_encoding):
            variant = self._gzip(representation)

        # RFC 9110 §13.2.2: If-Modified-Since counts only when If-None-Match is absent.
        if if_none_match is not None:
            fresh = etag_matches(if_none_match, representation.etags)
        elif if_modified_since is not None and representation.last_modified is not None:
            fresh = if_modified_since == representation.last_modified_header or not modified_since(
                representation.last_modified, if_modified_since
            )
        else:
            fresh = False

        if fresh:
            await send(
                {"type": "http.response.start", "status": 304, "headers": variant.not_modified_headers}
            )
            await send({"type": "http.response.body", "body": b""})
            return 304
        await send({"type": "http.response.start", "status": 200, "headers": variant.ok_headers})
        await send({"type": "http.response.body", "body": variant.body if scope["method"] == "GET" else b""})
        return 200

    def _representation(self, document: FeedDocument) -> _Representation:
        cache = self._cache
        representation = cache.get(document.etag)
        if representation is not None and representation.source is document:
            cache.move_to_end(document.etag)
            return representation
        if (  # the same bytes, built again: keep what was prepared, the gzip form included
            representation is not None
            and representation.content_type == document.content_type
            and representation.last_modified == document.last_modified
        ):
            representation.source = document
            cache.move_to_end(document.etag)
            return representation
        representation = _Representation(
            source=document,
            body=document.body,
            content_type=document.content_type,
            etag=document.etag,
            last_modified=document.last_modified,
            cache_control=self._cache_control,
        )
        cache[document.etag] = representation
        cache.move_to_end(document.etag)
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        return representation

    def _stylesheet_file(self) -> _Representation:
        body = self.provider.stylesheet()
        representation = self._stylesheet
        if representation is None or (representation.source is not body and representation.body != body):
            representation = self._stylesheet = _Representation(
                source=body,
                body=body,
                content_type=STYLESHEET_CONTENT_TYPE,
                etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
                last_modified=None,
                cache_control=self._cache_control,
            )
        return representation

    def _gzip(self, representation: _Representation) -> _Variant:
        if representation.gzip is None:
            body = gzip.compress(representation.body, compresslevel=GZIP_LEVEL, mtime=0)
            self.compressions += 1
            representation.gzip = representation.variant(body, representation.gzip_etag, coding=b"gzip")
        return representation.gzip

    async def _other_method(self, method: str, send: Send) -> int:
        if method == "OPTIONS":  # a CORS preflight, or a client asking what it may do
            await send(
                {"type": "http.response.start", "status": 204, "headers": (*_PREFLIGHT, (b"allow", _ALLOW))}
            )
            await send({"type": "http.response.body", "body": b""})
            return 204
        await _send_text(send, 405, _TEXT_METHOD, ((b"allow", _ALLOW), *_CORS))
        return 405


async def _send_text(send: Send, status: int, text: str, headers: Headers) -> None:
    body = text.encode()
    start_headers = (
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        *headers,
    )
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


def _with_headers(send: Send, extra: Headers) -> Send:
    """``send``, with ``extra`` added to the response's headers."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": (*message.get("headers", ()), *extra)}
        await send(message)

    return wrapped
