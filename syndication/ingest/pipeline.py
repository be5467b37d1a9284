"""The parse stage as top-level functions a worker process can run.

Each takes bytes and plain values and returns picklable values: the document or
page parsed, normalised and keyed (``identity.keys_for``). ``core`` runs them in
a process pool so parsing uses every core while the event loop keeps fetching.

The parsers are imported inside the functions: the process that only fetches and
stores (the main one, when a pool parses) never loads feedparser, lxml or nh3.

Pure: no I/O.
"""

from __future__ import annotations

import importlib
import signal
from datetime import tzinfo

from syndication.types import HtmlRules, KeyedArticle, ParsedDocument


def parse_feed_keyed(
    content: bytes, *, url: str, declared_charset: str | None, tz: tzinfo, source_id: str
) -> tuple[ParsedDocument, tuple[KeyedArticle, ...]]:
    """Parse a feed document and key every article (``ParseError`` when unreadable)."""
    from syndication.ingest.identity import keys_for
    from syndication.ingest.parse_feed import parse_feed

    doc = parse_feed(content, url=url, declared_charset=declared_charset, tz=tz)
    keyed = tuple(KeyedArticle(data=a, keys=keys_for(a, source_id=source_id)) for a in doc.articles)
    # The articles travel once, inside ``keyed``; the document keeps only its channel fields.
    return ParsedDocument(title=doc.title, link=doc.link, ttl=doc.ttl, warnings=doc.warnings), keyed


def listing_links(
    content: bytes, *, url: str, declared_charset: str | None, rules: HtmlRules
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Article links of a portal's listing page, and the warnings of its decoding."""
    from syndication.ingest.normalize import decode_document
    from syndication.ingest.parse_html import extract_links

    text, warning = decode_document(content, declared=declared_charset)
    links = extract_links(text, url=url, declared_charset=declared_charset, rules=rules)
    return links, (warning,) if warning else ()


def parse_page_keyed(
    content: bytes, *, url: str, declared_charset: str | None, rules: HtmlRules, tz: tzinfo, source_id: str
) -> tuple[KeyedArticle, tuple[str, ...]]:
    """Parse one portal article page and key it; the warnings of its decoding beside it."""
    from syndication.ingest.identity import keys_for
    from syndication.ingest.normalize import decode_document
    from syndication.ingest.parse_html import parse_article_page

    text, warning = decode_document(content, declared=declared_charset)
    article = parse_article_page(text, url=url, declared_charset=declared_charset, rules=rules, tz=tz)
    return KeyedArticle(data=article, keys=keys_for(article, source_id=source_id)), (
        warning,
    ) if warning else ()


PARSER_MODULES = (
    "syndication.ingest.identity",
    "syndication.ingest.parse_feed",
    "syndication.ingest.parse_html",
)


def worker_init() -> None:
    """The initializer of a parse process: leave Ctrl-C to the main process (it stops the
    pool in order; a terminal sends SIGINT to the whole process group), load the parsers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    preload()


def preload() -> None:
    """Import the parsers (a worker process calls this once, before its first document)."""
    for name in PARSER_MODULES:
        importlib.import_module(name)
