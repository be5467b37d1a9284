"""Parse a source's feed document (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, JSON Feed 1.0/1.1)
into a ``ParsedDocument`` of normalised ``ArticleData``.

Pure: no I/O, no clock. ``parse_feed`` is a top-level function taking and returning
picklable values, so it can run in a worker process.

XML goes through feedparser, but only after we have made the document safe for it:
we decode the bytes ourselves (feedparser turns windows-1258 labelled UTF-8 into
mojibake), and ``xml_safety.prepare_xml`` drops everything before the root element,
DOCTYPEs first, and neutralises every other markup declaration, so that no entity a
source declares is ever expanded (a small document defining one large entity used
many times exhausts memory), and caps author-like fields. feedparser's own
HTML sanitiser and URI resolution are off: it lets ``<svg onload>``, entity-encoded
``javascript:`` and ``data:`` URLs through; every fragment is sanitised with nh3 in
``normalize.sanitize_html`` instead.

Relative URLs in an article resolve against its xml:base, else its own link, else the
document URL. Dates go through ``normalize.parse_date`` first (feedparser reads a date
without a zone as UTC; portals mean local time), feedparser's parse second.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import feedparser

from syndication.errors import ParseError
from syndication.ingest.normalize import (
    absolute_url,
    decode_document,
    html_to_text,
    parse_date,
    sanitize_html,
    text_to_html,
)
from syndication.ingest.xml_safety import prepare_xml
from syndication.text import clean_line, nfc, truncate
from syndication.types import ArticleData, ParsedDocument

SUMMARY_LIMIT = 1000
AUTHOR_LIMIT = 200
TITLE_LIMIT = 1000
DERIVED_TITLE_LIMIT = 120
"""A title made from the summary, when an article has none, is this long at most."""
GUID_LIMIT = 2048
MAX_TAGS = 50
TAG_LIMIT = 100
MAX_TTL = timedelta(days=7)

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_IMG_SRC = re.compile(r'<img\b[^>]*?\bsrc="([^"]+)"')
_JSON_FEED_VERSION = re.compile(r"^https?://jsonfeed\.org/version/1(?:\.\d+)?/?$")


def parse_feed(content: bytes, *, url: str, declared_charset: str | None, tz: tzinfo) -> ParsedDocument:
    """Parse a feed document; ``url`` is where it came from (the base for relative links),
    ``tz`` the zone of dates written without one.

    Raises:
        ParseError: nothing feed-like is there at all (an HTML page, garbage), or a
            JSON Feed whose top level is invalid.
    """
    text, charset_warning = decode_document(content, declared=declared_charset)
    text = text.lstrip("\ufeff \t\r\n")
    warnings = [charset_warning] if charset_warning else []
    if text.startswith("{"):
        return _parse_json_feed(text, url=url, tz=tz, warnings=warnings)
    return _parse_xml(text, url=url, tz=tz, warnings=warnings)


# ---------------------------------------------------------------- XML via feedparser


def _get(mapping: object, key: str) -> Any:
    """A feedparser field without its aliases and deprecated fallbacks (``None`` if absent)."""
    return dict.get(mapping, key) if isinstance(mapping, dict) else None


def _string(mapping: object, key: str) -> str:
    value = _get(mapping, key)
    return value if isinstance(value, str) else ""


def _detail_is_html(mapping: object, key: str) -> bool:
    detail = _get(mapping, f"{key}_detail")
    return isinstance(detail, Mapping) and _get(detail, "type") in _HTML_TYPES


def _title(mapping: object) -> str:
    # Markup is removed even from titles declared plain text: RSS leaves the type open,
    # publishers escape HTML into titles, and no real title contains a tag.
    return html_to_text(_string(mapping, "title"), limit=TITLE_LIMIT)


def _resolved_base(detail: object, document_url: str) -> str | None:
    """The xml:base feedparser recorded on a field, made absolute against the document URL."""
    base = _get(detail, "base")
    return absolute_url(base, base_url=document_url) if isinstance(base, str) and base else None


def _entry_base(entry: object, document_url: str, link: str | None) -> str:
    """The base of the entry's relative URLs: its xml:base if it has one, else the
    article's own link (the body was written for that page, which is often on another
    host than the document), else the document URL."""
    details = [*(_get(entry, "content") or []), _get(entry, "summary_detail"), _get(entry, "title_detail")]
    for detail in details:
        if base := _resolved_base(detail, document_url):
            return base
    return link or document_url


def _content_html(entry: object, base: str, document_url: str) -> str:
    contents = [c for c in _get(entry, "content") or [] if isinstance(c, Mapping)]
    contents.sort(key=lambda c: _get(c, "type") not in _HTML_TYPES)  # stable: HTML first
    for content in contents:
        value = _string(content, "value")
        if value.strip():
            html = value if _get(content, "type") in _HTML_TYPES else text_to_html(value)
            content_base = _resolved_base(content, document_url) or base
            return sanitize_html(html, base_url=content_base)
    summary = _string(entry, "summary")
    if not summary.strip():
        return ""
    html = summary if _detail_is_html(entry, "summary") else text_to_html(summary)
    return sanitize_html(html, base_url=base)


def _feed_date(mapping: object, key: str, tz: tzinfo) -> datetime | None:
    # Our parser first: feedparser reads a date without a zone as UTC, portals mean local time.
    parsed = parse_date(_string(mapping, key), tz=tz)
    if parsed is not None:
        return parsed
    struct = _get(mapping, f"{key}_parsed")
    if struct is None:
        return None
    try:
        year, month, day, hour, minute, second = struct[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _author_text(value: str) -> str:
    # Plain text, like titles: publishers escape markup into author fields too
    # (``<dc:creator>&lt;script&gt;...``), and no real name contains a tag.
    return clean_line(html_to_text(value, limit=AUTHOR_LIMIT), limit=AUTHOR_LIMIT)


def _authors(mapping: object) -> str:
    names: list[str] = []
    for detail in _get(mapping, "authors") or []:
        if isinstance(detail, Mapping):
            name = _author_text(_string(detail, "name"))
            if name and name not in names:
                names.append(name)
    if not names:
        return _author_text(_string(mapping, "author"))
    return clean_line(", ".join(names), limit=AUTHOR_LIMIT)


def _is_image(item: object) -> bool:
    medium = _string(item, "medium")
    kind = _string(item, "type")
    return medium == "image" or kind.startswith("image/") or (not medium and not kind)


def _image_url(entry: object, base: str, content_html: str) -> str | None:
    candidates: list[object] = []
    candidates += [_get(m, "url") for m in _get(entry, "media_content") or [] if _is_image(m)]
    candidates += [_get(m, "url") for m in _get(entry, "media_thumbnail") or []]
    candidates += [
        _get(link, "href")
        for link in _get(entry, "links") or []
        if _get(link, "rel") == "enclosure" and _string(link, "type").startswith("image/")
    ]
    for candidate in candidates:
        if isinstance(candidate, str) and (resolved := absolute_url(candidate, base_url=base)):
            return resolved
    if image := _first_image(content_html):
        return image
    if _get(entry, "content") and _detail_is_html(entry, "summary"):
        # The picture is often in the description while the body comes without it.
        return _first_image(sanitize_html(_string(entry, "summary"), base_url=base))
    return None


def _first_image(sanitised_html: str) -> str | None:
    """The first ``<img>`` of sanitised HTML (whose URLs are absolute and quoted)."""
    match = _IMG_SRC.search(sanitised_html)
    return absolute_url(html.unescape(match.group(1)), base_url=None) if match else None


def _tags(terms: Iterable[object]) -> tuple[str, ...]:
    tags: list[str] = []
    for term in terms:
        tag = clean_line(term, limit=TAG_LIMIT) if isinstance(term, str) else ""
        if tag and tag not in tags:
            tags.append(tag)
    return tuple(tags[:MAX_TAGS])


def _derived_title(*texts: str) -> str:
    for text in texts:
        if text:
            return truncate(text, DERIVED_TITLE_LIMIT)
    return ""


def _guid(value: object) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    return nfc(value).strip()[:GUID_LIMIT] or None


def _link(entry: object, document_url: str) -> str | None:
    link = _string(entry, "link") or None
    if _get(entry, "guidislink"):
        # A link made from a guid: only a guid that is a URL already. Feeds often leave
        # out isPermaLink="false" on guids like "12345", which are no links at all.
        return absolute_url(link, base_url=None)
    return absolute_url(link, base_url=document_url)  # feedparser applied xml:base already


def _entry(entry: object, *, document_url: str, feed_author: str, tz: tzinfo) -> ArticleData:
    link = _link(entry, document_url)
    base = _entry_base(entry, document_url, link)
    content_html = _content_html(entry, base, document_url)
    summary = html_to_text(_string(entry, "summary"), limit=SUMMARY_LIMIT)
    title = _title(entry)
    updated = _feed_date(entry, "updated", tz)
    return ArticleData(
        guid=_guid(_get(entry, "id")),
        url=link,
        title=title or _derived_title(summary, html_to_text(content_html, limit=SUMMARY_LIMIT)),
        summary=summary,
        content_html=content_html,
        author=_authors(entry) or feed_author,
        published=_feed_date(entry, "published", tz) or _feed_date(entry, "created", tz) or updated,
        updated=updated,
        image_url=_image_url(entry, base, content_html),
        tags=_tags(_get(tag, "term") or _get(tag, "label") for tag in _get(entry, "tags") or []),
    )


def _ttl(value: object) -> timedelta | None:
    try:
        minutes = int(str(value).strip())
    except ValueError:
        return None
    return timedelta(minutes=minutes) if 0 < minutes <= MAX_TTL / timedelta(minutes=1) else None


def _parse_xml(text: str, *, url: str, tz: tzinfo, warnings: list[str]) -> ParsedDocument:
    data, prepared = prepare_xml(text)
    warnings += prepared
    result = feedparser.parse(
        io.BytesIO(data),  # a stream: given bytes, feedparser would first try them as a file name
        sanitize_html=False,
        resolve_relative_uris=False,
        # No content-location: feedparser would resolve relative guids against it (turning
        # "12345" into a URL); we resolve links ourselves.
        response_headers={"content-type": "application/xml; charset=utf-8"},
    )
    entries = _get(result, "entries") or []
    feed = _get(result, "feed") or {}
    if not entries and not _get(result, "version"):
        raise ParseError("not a feed: no RSS, Atom or JSON Feed content found", url=url)
    if _get(result, "bozo"):
        problem = _get(result, "bozo_exception")
        warnings.append(f"malformed XML, parsed as far as it goes: {problem}")
    feed_author = _authors(feed)
    articles = tuple(_entry(e, document_url=url, feed_author=feed_author, tz=tz) for e in entries)
    return ParsedDocument(
        title=_title(feed),
        link=absolute_url(_string(feed, "link") or None, base_url=url),
        ttl=_ttl(_get(feed, "ttl")),
        articles=articles,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------- JSON Feed


class _Invalid(Exception):
    """A JSON Feed value of the wrong type; the message names its path."""


def _optional(obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise _Invalid(f"{path}{key}: expected {what}")
    return value


def _optional_str(obj: dict[str, Any], key: str, path: str) -> str:
    return _optional(obj, key, path, str, "a string") or ""


def _json_authors(obj: dict[str, Any], path: str) -> str:
    """``authors`` (1.1) or ``author`` (1.0) as a line of names."""
    authors = _optional(obj, "authors", path, list, "a list")
    if authors is None:
        single = _optional(obj, "author", path, dict, "an object")
        authors = [single] if single is not None else []
        where = f"{path}author"
    else:
        where = f"{path}authors"
    names: list[str] = []
    for i, author in enumerate(authors):
        prefix = f"{where}[{i}]." if where.endswith("authors") else f"{where}."
        if not isinstance(author, dict):
            raise _Invalid(f"{prefix[:-1]}: expected an object")
        name = _author_text(_optional_str(author, "name", prefix))
        if name and name not in names:
            names.append(name)
    return clean_line(", ".join(names), limit=AUTHOR_LIMIT)


def _json_item(
    item: object, i: int, *, base: str, feed_author: str, tz: tzinfo, warnings: list[str]
) -> ArticleData:
    path = f"items[{i}]."
    if not isinstance(item, dict):
        raise _Invalid(f"items[{i}]: expected an object")
    guid = _guid(_optional(item, "id", path, (str, int, float), "a string"))
    if guid is None:
        raise _Invalid(f"items[{i}].id: missing")
    content_html = _optional_str(item, "content_html", path)
    content_text = _optional_str(item, "content_text", path)
    summary = clean_line(_optional_str(item, "summary", path), limit=SUMMARY_LIMIT)
    title = clean_line(_optional_str(item, "title", path), limit=TITLE_LIMIT)
    link = absolute_url(_optional_str(item, "url", path) or None, base_url=base)
    external = absolute_url(_optional_str(item, "external_url", path) or None, base_url=base)
    image = _optional_str(item, "image", path) or _optional_str(item, "banner_image", path)
    tags = _optional(item, "tags", path, list, "a list") or []
    for j, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise _Invalid(f"{path}tags[{j}]: expected a string")
    dates: dict[str, datetime | None] = {}
    for key in ("date_published", "date_modified"):
        raw = _optional_str(item, key, path)
        dates[key] = parse_date(raw, tz=tz)
        if raw and dates[key] is None:
            warnings.append(f"{path}{key}: not a date: {clean_line(raw, limit=50)!r}")
    html = sanitize_html(content_html or text_to_html(content_text), base_url=link or base)
    return ArticleData(
        guid=guid,
        url=link or external,
        title=title or _derived_title(summary, html_to_text(html, limit=SUMMARY_LIMIT)),
        summary=summary,
        content_html=html,
        author=_json_authors(item, path) or feed_author,
        published=dates["date_published"] or dates["date_modified"],
        updated=dates["date_modified"],
        image_url=absolute_url(image or None, base_url=base) or _first_image(html),
        tags=_tags(tags),
    )


def _parse_json_feed(text: str, *, url: str, tz: tzinfo, warnings: list[str]) -> ParsedDocument:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ParseError(f"not valid JSON: {error}", url=url) from error
    if not isinstance(document, dict):
        raise ParseError("not a JSON Feed: expected an object at the top level", url=url)
    version = document.get("version")
    if not isinstance(version, str) or not _JSON_FEED_VERSION.match(version):
        raise ParseError("version: expected a jsonfeed.org URL", url=url)
    items = document.get("items")
    if not isinstance(items, list):
        raise ParseError("items: expected a list", url=url)
    try:
        title = clean_line(_optional_str(document, "title", ""), limit=TITLE_LIMIT)
        home = absolute_url(_optional_str(document, "home_page_url", "") or None, base_url=url)
        feed_url = absolute_url(_optional_str(document, "feed_url", "") or None, base_url=url)
        feed_author = _json_authors(document, "")
    except _Invalid as error:
        raise ParseError(str(error), url=url) from error
    base = feed_url or url
    articles: list[ArticleData] = []
    for i, item in enumerate(items):
        try:
            articles.append(_json_item(item, i, base=base, feed_author=feed_author, tz=tz, warnings=warnings))
        except _Invalid as error:
            warnings.append(f"{error}; item skipped")
    return ParsedDocument(title=title, link=home, articles=tuple(articles), warnings=tuple(warnings))
