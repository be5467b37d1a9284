"""The parse stage as top-level functions a worker process can run, and the worker's loop.

Each parse function takes bytes and plain values and returns picklable values: the
document or page parsed, normalised and keyed (``identity.keys_for``). ``core`` runs
them in its parse pool (``core.parsing``) so parsing uses every core while the event
loop keeps fetching; ``serve`` is what each of that pool's processes runs.

The parsers are imported inside the functions: the process that only fetches and
stores (the main one, when a pool parses) never loads feedparser, lxml or nh3.

Pure apart from ``serve``, whose only I/O is its own end of a pipe.
"""

from __future__ import annotations

import importlib
import pickle
import resource
import signal
import traceback
from dataclasses import replace
from datetime import tzinfo
from multiprocessing.connection import Connection

from syndication.text import size_text
from syndication.types import ArticleData, HtmlRules, KeyedArticle, ParsedDocument


def parse_feed_keyed(
    content: bytes, *, url: str, declared_charset: str | None, tz: tzinfo, source_id: str, max_html: int
) -> tuple[ParsedDocument, tuple[KeyedArticle, ...]]:
    """Parse a feed document and key every article (``ParseError`` when unreadable); each
    article's HTML body is cut to ``max_html`` bytes (a warning says which were)."""
    from syndication.ingest.identity import keys_for
    from syndication.ingest.parse_feed import parse_feed

    doc = parse_feed(content, url=url, declared_charset=declared_charset, tz=tz)
    warnings = list(doc.warnings)
    keyed = tuple(
        KeyedArticle(data=a, keys=keys_for(a, source_id=source_id))
        for a in (_capped(a, max_html, warnings) for a in doc.articles)
    )
    # The articles travel once, inside ``keyed``; the document keeps only its channel fields.
    return ParsedDocument(title=doc.title, link=doc.link, ttl=doc.ttl, warnings=tuple(warnings)), keyed


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
    content: bytes,
    *,
    url: str,
    declared_charset: str | None,
    rules: HtmlRules,
    tz: tzinfo,
    source_id: str,
    max_html: int,
) -> tuple[KeyedArticle, tuple[str, ...]]:
    """Parse one portal article page and key it; the warnings of its decoding beside it, and
    its HTML body cut to ``max_html`` bytes (then the warnings say so)."""
    from syndication.ingest.identity import keys_for
    from syndication.ingest.normalize import decode_document
    from syndication.ingest.parse_html import parse_article_page

    text, warning = decode_document(content, declared=declared_charset)
    warnings: list[str] = [warning] if warning else []
    article = parse_article_page(text, url=url, declared_charset=declared_charset, rules=rules, tz=tz)
    # The poll names the page beside its warnings (``polling._page_warnings``).
    article = _capped(article, max_html, warnings, named=False)
    return KeyedArticle(data=article, keys=keys_for(article, source_id=source_id)), tuple(warnings)


def _capped(article: ArticleData, max_html: int, warnings: list[str], *, named: bool = True) -> ArticleData:
    """``article`` with its HTML body cut to ``max_html`` bytes, a warning added when it was
    (``named``: beginning with the article's address, for a feed's many articles)."""
    from syndication.ingest.normalize import truncate_html

    html = truncate_html(article.content_html, max_html)
    if html is article.content_html:
        return article
    warning = f"the article's HTML was cut to {size_text(max_html)} (fetch.max_content_html)"
    warnings.append(f"{article.url or article.guid or article.title}: {warning}" if named else warning)
    return replace(article, content_html=html)


PARSER_MODULES = (
    "syndication.ingest.identity",
    "syndication.ingest.parse_feed",
    "syndication.ingest.parse_html",
)


OK = "ok"
"""A reply: ``(OK, value)``."""
RAISED = "raised"
"""A reply: ``(RAISED, exception, traceback text)``; the exception is known to unpickle."""
OUT_OF_MEMORY = "out of memory"
"""A reply: ``(OUT_OF_MEMORY,)``; the worker exits after sending it."""


def serve(connection: Connection, memory_limit: int | None) -> None:
    """The loop of a parse process: run each call that comes down ``connection`` and send
    back its reply, until the other end closes.

    Ctrl-C is left to the main process (a terminal sends SIGINT to the whole process
    group; the main process stops the pool in order). ``memory_limit`` caps this process's
    address space (``RLIMIT_AS``): a parser that needs more gets ``MemoryError`` and the
    document fails instead of the machine swapping or the OOM killer choosing a victim.
    After a ``MemoryError`` the process exits, so that a fresh one, with a heap that is
    not fragmented by the failed attempt, takes the next document.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    preload()
    while True:
        try:
            request = connection.recv_bytes()
        except EOFError:
            return
        connection.send_bytes(b"")  # the receipt: from now on this document is ours
        reply = _reply(request)
        connection.send_bytes(reply)
        if reply is _MEMORY_REPLY:
            return


_MEMORY_REPLY = pickle.dumps((OUT_OF_MEMORY,))


def _reply(request: bytes) -> bytes:
    """The pickled reply to one pickled call ``(function, args, kwargs)``."""
    try:
        fn, args, kwargs = pickle.loads(request)  # noqa: S301 - from the main process, over our own pipe
        return pickle.dumps((OK, fn(*args, **kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        return _MEMORY_REPLY
    except Exception as exc:  # every failure goes back to the caller: none may end the loop
        return _raised(exc, traceback.format_exc())


def _raised(exc: Exception, trace: str) -> bytes:
    """The reply carrying ``exc``, checked to unpickle: an exception that does not would
    fail in the main process instead (as ``ParseError`` once broke the whole pool). One
    that does not round-trip is sent as a ``RuntimeError`` naming it, traceback kept."""
    try:
        reply = pickle.dumps((RAISED, exc, trace), protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(reply)  # noqa: S301 - our own bytes, made just above
    except Exception:  # any failure to round-trip means: send a stand-in
        stand_in = RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
        reply = pickle.dumps((RAISED, stand_in, trace), protocol=pickle.HIGHEST_PROTOCOL)
    return reply


def preload() -> None:
    """Import the parsers (a worker process calls this once, before its first document)."""
    for name in PARSER_MODULES:
        importlib.import_module(name)
