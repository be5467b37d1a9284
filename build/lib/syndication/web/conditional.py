"""The HTTP rules for serving stored bytes: validators, conditional requests, content coding.

Entity-tag matching follows RFC 9110 §13.1.2 (``If-None-Match`` uses the weak
comparison, ``*`` matches any current representation); ``If-Modified-Since``
is compared at one-second resolution, the resolution of an HTTP date;
``Accept-Encoding`` is read with its q-values (``gzip;q=0`` refuses gzip).
Header values arrive as the raw bytes of the ASGI scope.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import email.utils
import functools
import re
from collections.abc import Collection
from datetime import UTC, datetime
from urllib.parse import parse_qsl

__all__ = [
    "BadPageError",
    "accepts_gzip",
    "etag_matches",
    "gzip_etag",
    "http_date",
    "modified_since",
    "parse_page",
]

MAX_PAGE_DIGITS = 9
"""A page number longer than this is refused: no feed has a billion pages."""

_ENTITY_TAG = re.compile(rb'(?:W/)?("[^"]*")')


class BadPageError(ValueError):
    """The ``page`` query parameter is not an integer of at least 1."""


def http_date(moment: datetime) -> str:
    """``moment`` as an IMF-fixdate (``Fri, 27 Nov 2026 01:30:00 GMT``).

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place in an HTTP date")
    return email.utils.format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def etag_matches(header: bytes, etags: Collection[bytes]) -> bool:
    """Whether an ``If-None-Match`` value matches one of ``etags`` (quoted, without ``W/``).

    The comparison is weak: ``W/"x"`` matches ``"x"``. ``*`` matches anything.
    """
    if header in etags:  # the usual case: the one tag we sent last time
        return True
    if header.strip() == b"*":
        return True
    return any(match.group(1) in etags for match in _ENTITY_TAG.finditer(header))


def modified_since(last_modified: datetime, header: bytes) -> bool:
    """Whether the resource changed after the date in an ``If-Modified-Since`` value.

    A value that is not an HTTP date tells nothing, so it counts as modified.
    """
    try:
        since = email.utils.parsedate_to_datetime(header.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return True
    if since.tzinfo is None:  # "-0000" in an obsolete date form: read it as UTC, as RFC 9110 says
        since = since.replace(tzinfo=UTC)
    return int(last_modified.timestamp()) > since.timestamp()


def accepts_gzip(header: bytes) -> bool:
    """Whether an ``Accept-Encoding`` value lets us send gzip.

    ``gzip`` (or ``x-gzip``) with a q-value above 0 does; without a gzip entry,
    so does ``*`` with a q-value above 0. Clients send few distinct values, so
    the answers for short ones are cached.
    """
    if len(header) <= _CACHED_HEADER_LENGTH:
        return _accepts_gzip_cached(header)
    return _accepts_gzip(header)


_CACHED_HEADER_LENGTH = 128
"""Longer values are parsed each time: a client must not fill the cache with big ones."""


@functools.lru_cache(maxsize=256)
def _accepts_gzip_cached(header: bytes) -> bool:
    return _accepts_gzip(header)


def _accepts_gzip(header: bytes) -> bool:
    gzip_q: float | None = None
    any_q: float | None = None
    for item in header.lower().split(b","):
        coding, _, parameters = item.partition(b";")
        coding = coding.strip()
        q = _quality(parameters)
        if coding in (b"gzip", b"x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == b"*":
            any_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return any_q is not None and any_q > 0


def _quality(parameters: bytes) -> float:
    for parameter in parameters.split(b";"):
        key, _, value = parameter.partition(b"=")
        if key.strip() == b"q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def gzip_etag(etag: str) -> str:
    """The entity-tag of the gzip-coded form: ``"abc"`` -> ``"abc-gz"``.

    A different tag for a different coding keeps caches from serving one for the other.
    """
    if etag.endswith('"'):
        return etag[:-1] + '-gz"'
    return etag + "-gz"


def parse_page(query_string: bytes) -> int:
    """The ``page`` parameter of a query string; 1 when there is none.

    Other parameters (cache busters such as ``?_=123``) are ignored.

    Raises:
        BadPageError: ``page`` is given more than once, or is not an integer of at least 1.
    """
    if not query_string:
        return 1
    values = [
        value
        for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        if key == "page"
    ]
    if not values:
        return 1
    if len(values) > 1:
        raise BadPageError("page is given more than once")
    value = values[0].strip()
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_PAGE_DIGITS or int(value) < 1:
        raise BadPageError(f"not a page number: {value[:20]!r}")
    return int(value)
