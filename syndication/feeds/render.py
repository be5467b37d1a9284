"""Render one page of one feed as RSS 2.0, Atom 1.0 or JSON Feed 1.1, and the OPML list of feeds.

Pure: articles in, bytes out. No I/O, no clock (every date comes from the ``FeedPage``
or the articles), no store. The same inputs always give the same bytes, so a feed's
ETag only changes when its content does.

RSS and Atom are built with feedgen (1.0.0), plus its Dublin Core and Media RSS
extensions. What feedgen cannot say is added through its extension hooks
(``_FeedHook`` and ``_EntryHook``, which see the lxml tree before it is serialised),
not by dropping the point:

- the ``xml-stylesheet`` processing instruction (feedgen writes none);
- RSS ``atom:link`` relations other than ``self`` (RFC 5005 paging and the WebSub hub):
  feedgen keeps them for Atom but writes only ``rel="self"`` into RSS;
- RSS ``content:encoded`` for an article without a summary: feedgen would move the
  full HTML into ``description`` instead;
- ``rel``/``type`` of Atom entry links, which feedgen loses, and ``id``, ``updated`` and
  ``rel="self"`` in Atom ``source``, which it does not write.

Other limits are met by what we pass it: every date is set (its default is the wall
clock), an empty title becomes ``UNTITLED`` (it refuses an empty Atom title), an Atom
entry without a link gets a (possibly empty) content element (it refuses an entry with
neither), and names go to ``dc:creator`` (its RSS ``author`` must be an e-mail address).

Every string goes through ``text.nfc`` (one-line fields through ``text.clean_line``)
before it reaches a serialiser, whatever its origin: lxml refuses XML-illegal
characters, and readers must get NFC Vietnamese. ``content_html`` was sanitised by
ingest; it is only ever escaped here, never decoded or re-parsed.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from feedgen.feed import FeedGenerator
from lxml import etree

from syndication.text import clean_line, nfc
from syndication.types import Article, Channel, FeedDocument, FeedFormat, FeedPage, FeedSpec

__all__ = [
    "CONTENT_TYPES",
    "STYLESHEET_PATH",
    "UNTITLED",
    "feed_title",
    "feed_url",
    "human_url",
    "item_id",
    "render",
    "render_opml",
]

STYLESHEET_PATH: Final = "feeds/feed.xsl"
"""Where the XSL stylesheet is served, relative to ``Channel.link``."""

CONTENT_TYPES: Final[dict[FeedFormat, str]] = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}

UNTITLED: Final = "(Không có tiêu đề)"
"""Item title used when an article's title is empty: Atom requires a title and readers
show nothing useful without one."""

JSON_FEED_VERSION: Final = "https://jsonfeed.org/version/1.1"
JSON_EXTENSION: Final = "_syndication"

USER_COMMENT: Final = (
    "Đây là nguồn tin (feed) dạng JSON Feed: hãy dán địa chỉ của nó vào trình đọc tin "
    "để theo dõi các bài mới."
)

ATOM_NS: Final = "http://www.w3.org/2005/Atom"
CONTENT_NS: Final = "http://purl.org/rss/1.0/modules/content/"

_EXTENSIONS: Final[dict[FeedFormat, str]] = {"rss": "rss", "atom": "atom", "json": "json"}
_SELF_TYPES: Final[dict[FeedFormat, str]] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
_HOOK: Final = "syndication"
"""The name our feedgen extension is registered under (``fg.syndication``, ``fe.syndication``)."""


# --- addresses and identity ---------------------------------------------------------


def feed_url(channel: Channel, name: str, fmt: FeedFormat, page: int = 1) -> str:
    """The public address of one page of a feed: ``{link}feeds/{name}.{ext}[?page=N]``."""
    url = f"{channel.link}feeds/{nfc(name)}.{_EXTENSIONS[fmt]}"
    return f"{url}?page={page}" if page > 1 else url


def human_url(channel: Channel, name: str) -> str:
    """The HTML page of a feed, for people: ``{link}feeds/{name}/``."""
    return f"{channel.link}feeds/{nfc(name)}/"


_SPACE: Final = re.compile(r"\s")


def _is_web_url(url: str) -> bool:
    if _SPACE.search(url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _web_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) address, else ``None`` (never a ``javascript:`` link)."""
    if url is None:
        return None
    url = nfc(url).strip()
    return url if _is_web_url(url) else None


def item_id(article: Article, channel: Channel) -> str:
    """The item's identifier, the same forever: the source's guid when it is an absolute
    http(s) URL or a ``tag:`` URI, else ``tag:{host},{first seen date}:article-{id}``.

    The minted form rests only on the article id and its first-seen time, which never
    change, so it survives a change of the article's URL.
    """
    guid = nfc(article.guid or "").strip()
    if _is_web_url(guid) or (guid[:4].lower() == "tag:" and len(guid) > 4 and not _SPACE.search(guid)):
        return guid
    host = urlsplit(channel.link).hostname or "localhost"
    return f"tag:{host},{article.first_seen.astimezone(UTC):%Y-%m-%d}:article-{article.id}"


def feed_title(channel: Channel, feed: FeedSpec) -> str:
    """``{site} – {feed}``, or the site's title alone for the ``all`` feed."""
    if feed.name == "all":
        return clean_line(channel.title)
    return clean_line(f"{channel.title} – {feed.title}")


def _clean_channel(channel: Channel) -> Channel:
    """The channel with every string made safe to emit (it comes from configuration)."""
    return replace(
        channel,
        title=clean_line(channel.title),
        link=nfc(channel.link).strip(),
        description=nfc(channel.description).strip(),
        language=clean_line(channel.language),
        rights=nfc(channel.rights).strip(),
        websub_hub=_web_url(channel.websub_hub),
    )


def _feed_description(channel: Channel, feed: FeedSpec) -> str:
    return nfc(feed.description).strip() or nfc(channel.description).strip() or feed_title(channel, feed)


def _utc(moment: datetime) -> datetime:
    """UTC to the second: RSS dates cannot carry fractions, and every format says the same."""
    return moment.astimezone(UTC).replace(microsecond=0)


def _links(channel: Channel, page: FeedPage, fmt: FeedFormat) -> list[tuple[str, str]]:
    """``(rel, href)`` of the feed-level links: self, RFC 5005 paging where it applies, hub."""
    name = page.feed.name
    links = [("self", feed_url(channel, name, fmt, page.page))]
    if page.last_page > 1:
        links.append(("first", feed_url(channel, name, fmt, 1)))
        if page.page > 1:
            links.append(("previous", feed_url(channel, name, fmt, page.page - 1)))
        if page.page < page.last_page:
            links.append(("next", feed_url(channel, name, fmt, page.page + 1)))
        links.append(("last", feed_url(channel, name, fmt, page.last_page)))
    if channel.websub_hub:
        links.append(("hub", channel.websub_hub))
    return links


_LOOKS_LIKE_MARKUP: Final = re.compile(r"<[^\s<]|&#?\w+;")
"""A tag or an entity reference, as readers that take RSS text for HTML would see one."""


def _rss_text(text: str) -> str:
    """Plain text for an RSS title or ``dc:creator``: as it is, unless a reader reading it as HTML (many
    do: RSS leaves the type of a title open) would see a tag or an entity in it; then
    escaped, so that such readers show the text and never run it."""
    return html.escape(text, quote=False) if _LOOKS_LIKE_MARKUP.search(text) else text


def _ttl_minutes(channel: Channel) -> int:
    return max(0, -(-int(channel.ttl.total_seconds()) // 60))


# --- the article as every format sees it ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    """An article's fields, cleaned once for every format."""

    id: str
    url: str | None
    title: str
    summary: str
    content_html: str
    author: str
    published: datetime
    updated: datetime
    image: str | None
    categories: list[tuple[str, str]]
    """``(slug, title)``; a category without a known title shows its slug."""
    source_id: str
    source_title: str


def _item(article: Article, channel: Channel, page: FeedPage) -> _Item:
    slugs = [slug for slug in map(clean_line, article.categories) if slug]
    source_id = clean_line(article.source_id)
    return _Item(
        id=item_id(article, channel),
        url=_web_url(article.url),
        title=clean_line(article.title) or UNTITLED,
        summary=nfc(article.summary).strip(),
        content_html=nfc(article.content_html),
        author=clean_line(article.author),
        published=_utc(article.published),
        updated=_utc(article.updated),
        image=_web_url(article.image_url),
        categories=[(slug, clean_line(page.category_titles.get(slug, "")) or slug) for slug in slugs],
        source_id=source_id,
        source_title=clean_line(page.source_titles.get(article.source_id, "")) or source_id,
    )


# --- feedgen hooks ----------------------------------------------------------------------


class _FeedHook:
    """Feed-level feedgen extension: the stylesheet instruction, and (RSS) the links feedgen drops."""

    def __init__(self) -> None:
        self.stylesheet = ""
        self.rss_links: list[tuple[str, str]] = []

    def extend_ns(self) -> dict[str, str]:
        return {}

    def _stylesheet(self, root: etree._Element) -> None:
        if self.stylesheet:
            # The only quote-sensitive character in a pseudo-attribute is '"'.
            href = self.stylesheet.replace('"', "%22")
            root.addprevious(etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{href}"'))

    def extend_rss(self, rss: etree._Element) -> etree._Element:
        self._stylesheet(rss)
        channel = rss[0]
        anchor = channel.find(f"{{{ATOM_NS}}}link")
        for rel, href in self.rss_links:
            link = etree.Element(f"{{{ATOM_NS}}}link", href=href, rel=rel)
            if anchor is None:
                channel.append(link)
            else:
                anchor.addnext(link)
            anchor = link
        return rss

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        self._stylesheet(feed)
        return feed


class _EntryHook:
    """Entry-level feedgen extension: RSS ``content:encoded`` when there is no summary;
    the attributes of the Atom alternate link."""

    def __init__(self) -> None:
        self.content_html = ""
        self.alternate = ""
        self.source_feed = ""
        self.source_updated = ""

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_rss(self, item: etree._Element) -> etree._Element:
        if self.content_html:
            # Escaped text, not CDATA: lxml escapes "<", "&" and ">", so a "]]>" in the
            # HTML can end nothing.
            encoded = etree.SubElement(item, f"{{{CONTENT_NS}}}encoded")
            encoded.text = self.content_html
        return item

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        # feedgen 1.0.0 writes entry links with their href only (``FeedEntry.atom_entry``
        # reuses its loop variable for the new element and reads rel/type from it).
        # Its Atom elements carry no namespace until serialised, hence the bare "link".
        for link in entry.findall("link"):
            if self.alternate and link.get("href") == self.alternate:
                link.set("rel", "alternate")
                link.set("type", "text/html")
        source = entry.find("source")
        if source is not None and self.source_feed:
            # The source feed's own id (its page-1 address, as ``_atom`` sets), its updated,
            # and rel="self": with its title, the metadata every Atom feed must have
            # (RFC 4287 4.1.1), which the W3C feed validator expects a source to keep.
            etree.SubElement(source, "id").text = self.source_feed
            etree.SubElement(source, "updated").text = self.source_updated
            for link in source.findall("link"):
                link.set("rel", "self")
                link.set("type", _SELF_TYPES["atom"])
        return entry


def _generator(channel: Channel, page: FeedPage, fmt: FeedFormat) -> Any:
    """A feedgen ``FeedGenerator`` with the channel-level fields both XML formats share."""
    fg = FeedGenerator()
    fg.register_extension(_HOOK, _FeedHook, _EntryHook)
    # media:content for the lead image (see ``_rss_entry``) in both formats.
    fg.load_extension("media")
    title = feed_title(channel, page.feed)
    description = _feed_description(channel, page.feed)
    fg.title(_rss_text(title) if fmt == "rss" else title)
    fg.description(_rss_text(description) if fmt == "rss" else description)
    if channel.language:
        fg.language(channel.language)
    if channel.rights:
        fg.rights(channel.rights)
    fg.updated(_utc(page.updated))  # also lastBuildDate; feedgen's default is the wall clock
    getattr(fg, _HOOK).stylesheet = STYLESHEET_PATH.rsplit("/", 1)[-1]
    return fg


def _media(fe: Any, item: _Item) -> None:
    if item.image:
        # group=None puts media:content straight in the item instead of a media:group.
        fe.media.content(url=item.image, medium="image", group=None)


def _serialise(fg: Any, fmt: FeedFormat) -> bytes:
    method = fg.rss_str if fmt == "rss" else fg.atom_str
    body: bytes = method(pretty=True, encoding="UTF-8", xml_declaration=True)
    return body


# --- RSS 2.0 ------------------------------------------------------------------------------


def _rss(channel: Channel, page: FeedPage) -> bytes:
    fg = _generator(channel, page, "rss")
    fg.load_extension("dc")
    links = _links(channel, page, "rss")
    fg.link(href=links[0][1], rel="self", type=_SELF_TYPES["rss"])
    fg.link(href=channel.link, rel="alternate")  # the last link becomes RSS <link>
    getattr(fg, _HOOK).rss_links = links[1:]
    if ttl := _ttl_minutes(channel):
        fg.ttl(ttl)
    for article in page.articles:
        _rss_entry(fg.add_entry(order="append"), _item(article, channel, page), channel)
    return _serialise(fg, "rss")


def _rss_entry(fe: Any, item: _Item, channel: Channel) -> None:
    fe.title(_rss_text(item.title))
    if item.url:
        fe.link(href=item.url, rel="alternate")
    fe.guid(item.id, permalink=item.id == item.url)
    if item.summary:
        # RSS readers take description as HTML: escape the plain text so that a "<" in it
        # is shown, never run.
        fe.description(html.escape(item.summary, quote=False))
        if item.content_html:
            fe.content(item.content_html)
    else:
        getattr(fe, _HOOK).content_html = item.content_html
    if item.author:
        # RSS <author> must be an e-mail address; Dublin Core takes a name. Readers take
        # it for HTML as readily as a title: escaped like one.
        fe.dc.dc_creator(_rss_text(item.author))
    if item.categories:
        fe.category([{"term": slug, "label": title} for slug, title in item.categories])
    fe.published(item.published)
    if item.source_id:
        fe.source(url=feed_url(channel, f"source-{item.source_id}", "rss"), title=item.source_title)
    # media:content rather than <enclosure>: an enclosure must state the image's length
    # and type, which only a request to the image would tell; media:content needs its URL.
    _media(fe, item)


# --- Atom 1.0 -----------------------------------------------------------------------------


def _atom(channel: Channel, page: FeedPage) -> bytes:
    fg = _generator(channel, page, "atom")
    fg.id(feed_url(channel, page.feed.name, "atom"))
    # A feed-level author makes entries without one valid (RFC 4287 4.1.1).
    fg.author(name=channel.title or channel.link, uri=channel.link)
    links = _links(channel, page, "atom")
    fg.link(href=links[0][1], rel="self", type=_SELF_TYPES["atom"])
    fg.link(href=channel.link, rel="alternate", type="text/html")
    for rel, href in links[1:]:
        fg.link(href=href, rel=rel, type=None if rel == "hub" else _SELF_TYPES["atom"])
    scheme = f"{channel.link}feeds/"
    for article in page.articles:
        _atom_entry(fg.add_entry(order="append"), _item(article, channel, page), channel, scheme)
    return _serialise(fg, "atom")


def _atom_entry(fe: Any, item: _Item, channel: Channel, scheme: str) -> None:
    fe.id(item.id)
    fe.title(item.title)
    fe.updated(item.updated)
    fe.published(item.published)
    if item.url:
        fe.link(href=item.url, rel="alternate", type="text/html")
        getattr(fe, _HOOK).alternate = item.url
    if item.author:
        fe.author(name=item.author)
    if item.content_html or not item.url:
        # An entry needs content or an alternate link; an empty content is valid.
        fe.content(item.content_html, type="html")
    if item.summary:
        fe.summary(item.summary, type="text")
    if item.categories:
        # The scheme makes "{scheme}{term}.atom" the category's own feed.
        fe.category([{"term": slug, "label": title, "scheme": scheme} for slug, title in item.categories])
    if item.source_id:
        source_feed = feed_url(channel, f"source-{item.source_id}", "atom")
        fe.source(url=source_feed, title=item.source_title)
        hook = getattr(fe, _HOOK)
        hook.source_feed = source_feed
        # The source feed as it stood when this version of the entry was taken from it,
        # which is when the entry last changed. (Its current updated is not part of this
        # page, and a render is pure.)
        hook.source_updated = item.updated.isoformat()
    _media(fe, item)


# --- JSON Feed 1.1 ------------------------------------------------------------------------


def _json(channel: Channel, page: FeedPage) -> bytes:
    links = dict(_links(channel, page, "json"))
    document: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": feed_title(channel, page.feed),
        "home_page_url": channel.link,
        "feed_url": links["self"],
        "description": _feed_description(channel, page.feed),
        "user_comment": USER_COMMENT,
    }
    if "next" in links:
        document["next_url"] = links["next"]
    if channel.language:
        document["language"] = channel.language
    document["authors"] = [{"name": channel.title or channel.link, "url": channel.link}]
    if "hub" in links:
        document["hubs"] = [{"type": "WebSub", "url": links["hub"]}]
    document["items"] = [_json_item(_item(article, channel, page)) for article in page.articles]
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return text.encode("utf-8")


def _json_item(item: _Item) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": item.id}
    if item.url:
        entry["url"] = item.url
    entry["title"] = item.title
    entry["content_html"] = item.content_html
    if item.summary:
        entry["summary"] = item.summary
    if item.image:
        entry["image"] = item.image
    entry["date_published"] = item.published.isoformat()
    entry["date_modified"] = item.updated.isoformat()
    if item.author:
        entry["authors"] = [{"name": item.author}]
    if item.categories:
        entry["tags"] = [title for _, title in item.categories]
    if item.source_id:
        # Attribution; JSON Feed leaves keys starting with "_" to extensions.
        entry[JSON_EXTENSION] = {"source": item.source_title, "source_id": item.source_id}
    return entry


# --- public entry points --------------------------------------------------------------------

_RENDERERS: Final = {"rss": _rss, "atom": _atom, "json": _json}


def render(fmt: FeedFormat, channel: Channel, page: FeedPage) -> FeedDocument:
    """Build one page of one feed: exactly the bytes to send, with their validators.

    Raises:
        KeyError: ``fmt`` is not a ``FeedFormat``.
    """
    body = _RENDERERS[fmt](_clean_channel(channel), page)
    return FeedDocument(
        name=page.feed.name,
        format=fmt,
        page=page.page,
        body=body,
        content_type=CONTENT_TYPES[fmt],
        etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
        last_modified=page.updated,
    )


def render_opml(channel: Channel, feeds: Sequence[FeedSpec]) -> bytes:
    """OPML 2.0 listing every feed (its RSS address) for one-click import into a reader."""
    channel = _clean_channel(channel)
    opml = etree.Element("opml", version="2.0")
    head = etree.SubElement(opml, "head")
    etree.SubElement(head, "title").text = channel.title
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(opml, "body")
    for feed in feeds:
        title = feed_title(channel, feed)
        outline = etree.SubElement(body, "outline", type="rss", version="RSS2", text=title, title=title)
        outline.set("description", _feed_description(channel, feed))
        outline.set("xmlUrl", feed_url(channel, feed.name, "rss"))
        outline.set("htmlUrl", human_url(channel, feed.name))
        if channel.language:
            outline.set("language", channel.language)
    return etree.tostring(opml, encoding="UTF-8", xml_declaration=True, pretty_print=True)
