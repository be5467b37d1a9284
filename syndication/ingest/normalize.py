"""Normalisation rules for text, HTML, URLs and dates coming from sources.

Pure: no I/O, no clock. Every function here is safe to call in a worker process.

Text rules (NFC, keys) live in ``syndication.text``.
"""

from __future__ import annotations

import codecs
import email.utils
import html
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from urllib.parse import urljoin, urlsplit

import charset_normalizer
import lxml.html
import nh3
from lxml import etree

from syndication.ingest import legacy_vi
from syndication.text import nfc, truncate

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "a", "img", "figure", "figcaption", "strong", "em", "b", "i", "u",
        "ul", "ol", "li", "blockquote", "h2", "h3", "h4", "h5", "h6",
        "table", "thead", "tbody", "tr", "td", "th", "caption",
        "span", "div", "sub", "sup", "hr", "pre", "code",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
REMOVED_WITH_CONTENT = frozenset(
    {
        "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math",
        "applet", "frame", "frameset", "noframes", "noembed", "xmp", "plaintext", "head", "title",
        "canvas", "audio", "video", "select", "textarea", "button",
    }
)  # fmt: skip
"""Dropped together with everything inside them."""
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_URL_ATTRIBUTES = frozenset({"href", "src"})
_BLOCK_TAGS = frozenset(
    {
        "p", "br", "div", "li", "ul", "ol", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "figure", "figcaption",
        "hr", "pre", "section", "article", "header", "footer", "aside", "dl", "dt", "dd", "address",
    }
)  # fmt: skip
"""Tags that separate words: ``html_to_text`` turns them into spaces."""
_TAG = re.compile(r"<[^>]*>")

MAX_DEPTH = 128
"""Nesting kept in an HTML fragment (and a portal page): elements deeper than this are
unwrapped, their text kept. nh3's parser (html5ever) takes time quadratic in nesting
depth (60,000 nested ``<div>`` took 35 s); real articles nest 10 to 30 deep, whole
portal pages rarely 40."""
MAX_ELEMENTS = 100_000
"""Elements kept as markup in one HTML fragment; a fragment with more keeps only its text
(a 2 MB article body holds about 20,000)."""
_DEEP = "/".join(["*"] * MAX_DEPTH) + "[*]"
"""XPath: the elements at depth ``MAX_DEPTH`` below the context node that have children."""

# Browsers ignore leading/trailing C0 controls and spaces and every tab/newline inside a URL.
_URL_EDGE = "".join(chr(c) for c in range(0x21))
_URL_INNER_JUNK = re.compile("[\t\n\r]")


def _resolve(url: str, base_url: str | None, schemes: frozenset[str]) -> str | None:
    url = _URL_INNER_JUNK.sub("", url.strip(_URL_EDGE))
    if not url:
        return None
    try:
        resolved = urljoin(base_url, url) if base_url else url
        parts = urlsplit(resolved)
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 literal)
        return None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        return None
    if scheme != "mailto" and not parts.hostname:
        return None
    return resolved.replace(" ", "%20")


_PLAIN_PATH = re.compile(r"/(?![/\\])(?:(?!/\.)[!#-~])*\Z")
"""A path-absolute reference of printable ASCII, with no "//" start, backslash or dot segment."""


def _origin(base_url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) base URL, else ``None``."""
    if not base_url:
        return None
    try:
        parts = urlsplit(base_url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc}"


def markup_text(html: str) -> str:
    """Plain text of HTML that ``sanitize_html`` produced, for keys (search, dedup).

    Only for sanitised markup: it strips tags with a regex, which is safe and much
    faster than parsing because that markup is well-formed. Not for display.
    """
    return " ".join(html_unescape(_TAG.sub(" ", html)).split())


def absolute_url(url: str | None, *, base_url: str | None) -> str | None:
    """Resolve ``url`` against ``base_url``; ``None`` unless the result is http(s)."""
    if url is None:
        return None
    return _resolve(nfc(url), base_url, frozenset({"http", "https"}))


def limit_markup(html: str) -> str:
    """``html`` with its nesting and element count capped (``MAX_DEPTH``, ``MAX_ELEMENTS``),
    so that sanitising it takes time linear in its size. Unchanged when within the caps.

    A fragment with fewer tags than ``MAX_DEPTH`` cannot nest deeper and is returned as it
    is; any other is parsed by libxml2 (linear, C; it stops at depth 256 itself) and,
    only when a cap is exceeded, serialised again from the capped tree.
    """
    if html.count("<") <= MAX_DEPTH:
        return html
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, recover=True)
    doc = etree.fromstring(f"<html><body><div>{html}</div></body></html>", parser=parser)
    holder = doc.find("body/div") if doc is not None else None
    if holder is None:
        return ""
    if not limit_tree(holder):
        return html
    return (holder.text or "") + "".join(etree.tostring(c, encoding="unicode", method="html") for c in holder)


def limit_tree(root: etree._Element, *, max_elements: int = MAX_ELEMENTS) -> bool:
    """Cap the tree below ``root`` in place: elements deeper than ``MAX_DEPTH`` are unwrapped
    and, past ``max_elements``, every element below ``root`` is; their text stays, what
    ``REMOVED_WITH_CONTENT`` names goes with its content. True when something changed.
    Linear: libxml2's XPath and tree surgery do the walking."""
    removed = set(REMOVED_WITH_CONTENT)
    if int(root.xpath("count(.//*)")) > max_elements:  # type: ignore[arg-type]
        etree.strip_elements(root, *removed, with_tail=False)
        etree.strip_tags(root, "*")
        return True
    deep = root.xpath(_DEEP)
    for el in deep if isinstance(deep, list) else ():
        if isinstance(el, etree._Element):
            etree.strip_elements(el, *removed, with_tail=False)
            etree.strip_tags(el, "*")
    return bool(deep)


def sanitize_html(html: str, *, base_url: str | None) -> str:
    """Allow-list sanitise (nh3) an HTML fragment and make every link/image URL absolute
    against ``base_url``. Only http, https and mailto URLs survive; no script, style,
    iframe, event handler, ``javascript:`` or ``data:`` URL. Nesting and element count
    are capped first (``limit_markup``)."""

    origin = _origin(base_url)

    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES:
            # Fast path for the common "/path" link: the origin plus the path is what
            # urljoin would give (no dot segments, no whitespace); anything else takes
            # the full rules. It runs once per link of every article, so it counts.
            if origin and _PLAIN_PATH.match(value):
                return origin + value
            return _resolve(value, base_url, URL_SCHEMES)
        return value

    cleaned = nh3.clean(
        limit_markup(nfc_markup(html)),
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return nfc_markup(cleaned).strip()


_CLOSING_ROOM = 4096
"""Bytes left free when cutting sanitised HTML, for the end tags that close it again
(``MAX_DEPTH`` of them at most)."""


def truncate_html(html: str, limit: int) -> str:
    """Sanitised HTML cut to at most ``limit`` bytes of UTF-8, never inside a character,
    a tag or an entity, every element it leaves open closed again. Unchanged when it fits."""
    data = html.encode("utf-8")
    if len(data) <= limit:
        return html
    room = _CLOSING_ROOM
    while True:
        cut = data[: max(limit - room, 0)].decode("utf-8", errors="ignore")
        if (lt := cut.rfind("<")) > cut.rfind(">"):
            cut = cut[:lt]  # inside a tag
        if (amp := cut.rfind("&")) != -1 and ";" not in cut[amp:]:
            cut = cut[:amp]  # inside an entity
        closed = sanitize_html(cut, base_url=None)  # URLs are absolute already
        if len(closed.encode("utf-8")) <= limit or room >= limit:
            return closed
        room *= 2


def html_to_text(html: str, *, limit: int = 2000) -> str:
    """Plain text of an HTML fragment (for summaries and search), NFC, whitespace collapsed."""
    if "<" not in html and "&" not in html:
        # Already plain text (most titles and many summaries): nothing to parse.
        return truncate(" ".join(nfc(html).split()), limit)
    # nh3 parses like a browser and returns well-formed markup whose only tags are the
    # bare block tags kept here, so a regex can turn them into word breaks safely.
    markup = nh3.clean(
        limit_markup(nfc(html)),
        tags=set(_BLOCK_TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes={},
        link_rel=None,
        strip_comments=True,
    )
    text = nfc(html_unescape(_TAG.sub(" ", markup)))
    return truncate(" ".join(text.split()), limit)


def html_unescape(text: str) -> str:
    """``html.unescape`` (named so that callers need not shadow the ``html`` parameters)."""
    return html.unescape(text)


def text_to_html(text: str) -> str:
    """Plain text as HTML paragraphs: blank lines separate paragraphs, newlines become ``<br>``."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", nfc(text).replace("\r\n", "\n"))]
    return "".join(
        "<p>" + html.escape(p, quote=False).replace("\n", "<br>") + "</p>" for p in paragraphs if p
    )


# ---------------------------------------------------------------- dates

_DMY = re.compile(r"(?<!\d)(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})(?!\d)")
_YMD = re.compile(r"(?<!\d)(\d{4})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{1,2})(?!\d)")
_VI_LONG = re.compile(r"ngày\s+(\d{1,2})\s+tháng\s+(\d{1,2})(?:\s*,)?\s+năm\s+(\d{4})(?!\d)", re.IGNORECASE)
_TIME = re.compile(
    r"(?<![\d:])(\d{1,2})\s*(?::|h|giờ)\s*(\d{2})(?:\s*(?::|phút)?\s*(\d{2})(?!\d))?"
    r"(?:\s*(am|pm|sa|ch)\b)?",
    re.IGNORECASE,
)
_OFFSET = re.compile(
    r"(?:gmt|utc)\s*(?:([+-])\s*(\d{1,2})(?::?(\d{2}))?)?|(?<=\d)\s*([+-])(\d{2}):?(\d{2})\b", re.I
)
_RFC822_HINT = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b", re.IGNORECASE)
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _to_utc(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _parse_rfc822(text: str, tz: tzinfo) -> datetime | None:
    if not _RFC822_HINT.search(text):
        return None
    try:
        value = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None and text.endswith("-0000"):
        return value.replace(tzinfo=UTC)  # RFC 5322: UTC, local zone unknown
    return _to_utc(value, tz)


def _parse_iso(text: str, tz: tzinfo) -> datetime | None:
    if not _ISO.match(text):
        return None
    try:
        value = datetime.fromisoformat(text.replace(" Z", "Z"))
    except ValueError:
        return None
    return _to_utc(value, tz)


def _offset(text: str, tz: tzinfo) -> tzinfo:
    match = _OFFSET.search(text)
    if match is None:
        return tz
    sign, hours, minutes = match.group(1, 2, 3) if match.group(4) is None else match.group(4, 5, 6)
    if sign is None:  # a bare "GMT" / "UTC"
        return UTC
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if delta >= timedelta(hours=24):
        return tz
    return timezone(-delta if sign == "-" else delta)


def _parse_portal(text: str, tz: tzinfo) -> datetime | None:
    lowered = text.lower()
    match = _VI_LONG.search(lowered) or _DMY.search(lowered)
    if match is not None:
        day, month, year = (int(g) for g in match.groups())
    elif (match := _YMD.search(lowered)) is not None:
        year, month, day = (int(g) for g in match.groups())
    else:
        return None
    rest = lowered[: match.start()] + " | " + lowered[match.end() :]
    hour = minute = second = 0
    time_match = _TIME.search(rest)
    if time_match is not None:
        hour, minute = int(time_match.group(1)), int(time_match.group(2))
        second = int(time_match.group(3) or 0)
        meridiem = (time_match.group(4) or "").lower()
        if meridiem in ("pm", "ch") and hour < 12:
            hour += 12
        elif meridiem in ("am", "sa") and hour == 12:
            hour = 0
        rest = rest[: time_match.start()] + rest[time_match.end() :]
    try:
        value = datetime(year, month, day, hour, minute, second, tzinfo=_offset(rest, tz))
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def parse_date(text: str | None, *, tz: tzinfo) -> datetime | None:
    """Parse a date as portals and feeds write it, to aware UTC; naive dates are in ``tz``.

    Handles RFC 822/1123, ISO 8601/RFC 3339 and Vietnamese portal forms such as
    "Thứ hai, 27/11/2026 08:30", "27/11/2026", "08:30 27-11-2026",
    "ngày 27 tháng 11 năm 2026". ``None`` when it is not a date.

    Numeric dates are always day/month/year (as Vietnamese portals write them) unless
    the year comes first.
    """
    if not text:
        return None
    text = " ".join(nfc(text).split())[:200]
    try:
        return _parse_rfc822(text, tz) or _parse_iso(text, tz) or _parse_portal(text, tz)
    except (ValueError, OverflowError):
        return None


# ---------------------------------------------------------------- charsets

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_WESTERN = frozenset({"latin_1", "iso8859_1", "cp1252", "iso8859_15", "ascii"})
_TONE_CHARS = frozenset("\u0300\u0301\u0303\u0309\u0323")
_VOWEL_BASES = frozenset("aeiouy")
_NAMES = {"utf_8": "utf-8", "cp1258": "windows-1258", "cp1252": "windows-1252", "latin_1": "iso-8859-1"}


def _codec(label: str) -> str | None:
    try:
        return codecs.lookup(label).name.replace("-", "_")
    except LookupError:
        return None


def _display(codec: str) -> str:
    return _NAMES.get(codec, codec.replace("_", "-"))


def _strict(content: bytes, codec: str) -> str | None:
    try:
        return content.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def nfc_markup(text: str) -> str:
    """``text.nfc`` for markup: never joins ``<``, ``>`` or ``=`` with a following U+0338
    (NFC would turn ``>`` + U+0338 into ``≯``, unclosing a tag)."""
    if "\u0338" not in text:
        return nfc(text)
    pieces = re.split(r"(?<=[<>=])(?=\u0338)", text)
    return "".join(nfc(piece) for piece in pieces)


def _in_document_charset(content: bytes) -> str | None:
    head = content[:2048]
    match = _XML_ENCODING.match(head) or _META_CHARSET.search(head)
    if match is None:
        return None
    label = match.group(1).decode("ascii").lower()
    # A declaration readable as ASCII means the bytes are not UTF-16/32, whatever it says.
    codec = _codec(label) or ""
    return None if codec.startswith(("utf_16", "utf_32")) else label


def _looks_like_cp1258(text: str) -> bool:
    """Whether a windows-1258 reading is Vietnamese: some tone marks, each right after a vowel.

    Read as windows-1252, the same bytes give "Ì", "ì", "Ò", "ò", "Þ" right after vowels,
    which no Western language writes.
    """
    tones = 0
    previous = ""
    for char in text:
        if char in _TONE_CHARS:
            if unicodedata.normalize("NFD", previous)[:1].lower() not in _VOWEL_BASES:
                return False
            tones += 1
        previous = char
    return tones >= 2


def _detect(content: bytes) -> tuple[str, str]:
    for codec in ("utf_8", "cp1258"):
        text = _strict(content, codec)
        if text is not None:
            return text, codec
    best = charset_normalizer.from_bytes(content).best()
    if best is not None and best.encoding:
        return str(best), best.encoding
    return content.decode("utf-8", errors="replace"), "utf_8"


def decode_document(content: bytes, *, declared: str | None) -> tuple[str, str | None]:
    """Bytes to text, detecting wrong or missing charsets (windows-1258 labelled UTF-8,
    no label at all) and legacy Vietnamese font encodings instead of producing mojibake.
    Returns ``(text, warning)``.

    Order: a byte order mark; the declared (HTTP) charset; the charset the document
    itself declares in its first 2 KB; then detection (strict UTF-8, windows-1258,
    charset_normalizer). Labels are tried strictly; a Western single-byte label
    (ISO-8859-1, windows-1252) loses to valid UTF-8 or to a windows-1258 reading that
    is plainly Vietnamese. Text that reads as Vietnamese in TCVN3, VNI or VISCII (and not
    as decoded) is converted (``legacy_vi.repair``). The text is NFC (windows-1258 writes
    tones as combining marks) with XML-illegal characters removed.
    """
    text, codec, warning = _decode(content, declared)
    text, legacy = legacy_vi.repair(text, codec=codec)
    return nfc_markup(text), "; ".join(w for w in (warning, legacy) if w) or None


def _decode(content: bytes, declared: str | None) -> tuple[str, str, str | None]:
    """``decode_document`` before NFC and legacy encodings: ``(text, codec, warning)``."""
    for bom, bom_codec in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(bom_codec, errors="replace"), bom_codec, None
    labels = [label.strip().lower() for label in (declared, _in_document_charset(content)) if label]
    tried: set[str] = set()
    wrong: list[str] = []
    unknown: list[str] = []
    for label in labels:
        codec = _codec(label)
        if codec is None:
            unknown.append(label)
            continue
        if codec in tried:
            continue
        tried.add(codec)
        text = _strict(content, codec)
        if text is None:
            wrong.append(label)
            continue
        if codec in _WESTERN and any(b >= 0x80 for b in content):
            # Servers that say ISO-8859-1 by default while sending UTF-8 are common, and
            # Western single-byte text is practically never valid multi-byte UTF-8.
            for better in ("utf_8", "cp1258"):
                other = _strict(content, better)
                if other is not None and (better == "utf_8" or _looks_like_cp1258(other)):
                    return other, better, _wrong(label, better)
        return text, codec, _wrong(wrong[0], codec) if wrong else _unknown(unknown, codec)
    text, codec = _detect(content)
    if wrong:
        return text, codec, _wrong(wrong[0], codec)
    if unknown or codec == "utf_8":
        return text, codec, _unknown(unknown, codec)
    return text, codec, f"no charset declared; decoded as {_display(codec)}"


def _wrong(label: str, codec: str) -> str:
    return f"declared charset {label} is wrong; decoded as {_display(codec)}"


def _unknown(labels: list[str], codec: str) -> str | None:
    return f"unknown charset {labels[0]}; decoded as {_display(codec)}" if labels else None
