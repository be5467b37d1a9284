"""The parse stage as top-level functions a worker process can run.

Each takes bytes and plain values and returns picklable values: the document or
page parsed, normalised and keyed (``identity.keys_for``). ``core`` runs them in
a process pool so parsing uses every core while the event loop keeps fetching.

Pure: no I/O.
"""

from __future__ import annotations

from datetime import tzinfo

from syndication.ingest.identity import keys_for
from syndication.ingest.parse_feed import parse_feed
from syndication.ingest.parse_html import extract_links, parse_article_page
from syndication.types import HtmlRules, KeyedArticle, ParsedDocument


def parse_feed_keyed(
    content: bytes, *, url: str, declared_charset: str | None, tz: tzinfo, source_id: str
) -> tuple[ParsedDocument, tuple[KeyedArticle, ...]]:
    """Parse a feed document and key every article (``ParseError`` when unreadable)."""
    doc = parse_feed(content, url=url, declared_charset=declared_charset, tz=tz)
    keyed = tuple(KeyedArticle(data=a, keys=keys_for(a, source_id=source_id)) for a in doc.articles)
    # The articles travel once, inside ``keyed``; the document keeps only its channel fields.
    return ParsedDocument(title=doc.title, link=doc.link, ttl=doc.ttl, warnings=doc.warnings), keyed


def listing_links(
    content: bytes, *, url: str, declared_charset: str | None, rules: HtmlRules
) -> tuple[str, ...]:
    """Article links of a portal's listing page."""
    return extract_links(content, url=url, declared_charset=declared_charset, rules=rules)


def parse_page_keyed(
    content: bytes, *, url: str, declared_charset: str | None, rules: HtmlRules, tz: tzinfo, source_id: str
) -> KeyedArticle:
    """Parse one portal article page and key it."""
    article = parse_article_page(content, url=url, declared_charset=declared_charset, rules=rules, tz=tz)
    return KeyedArticle(data=article, keys=keys_for(article, source_id=source_id))
