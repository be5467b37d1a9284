"""Tests for ``syndication.feeds.render``: RSS 2.0, Atom 1.0, JSON Feed 1.1 and OPML.

Every output is checked three ways: a strict check of its format written here (a RELAX NG
schema transcribed from RFC 4287 for Atom, explicit structural rules for RSS 2.0, a JSON
Schema for JSON Feed 1.1), feedparser reading it back field by field, and our own ingest
reading it back as a republishing portal running this software would. Golden files under
``tests/data/feeds_out/`` pin the exact bytes; regenerate them deliberately with
``SYNDICATION_REGENERATE_GOLDEN=1 pytest tests/test_feeds_render.py`` and read the diff.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from lxml import html as lxml_html

from syndication.feeds import render as render_module
from syndication.feeds.render import (
    STYLESHEET_PATH,
    UNTITLED,
    feed_url,
    item_id,
    render,
    render_opml,
)
from syndication.ingest.normalize import sanitize_html
from syndication.ingest.parse_feed import parse_feed
from syndication.text import clean_line, nfc
from syndication.types import Article, Channel, FeedFormat, FeedPage, FeedSpec

HERE = Path(__file__).parent
GOLDEN = HERE / "data" / "feeds_out"
SCHEMAS = HERE / "schemas"
REGENERATE = os.environ.get("SYNDICATION_REGENERATE_GOLDEN") == "1"
XSL = Path(render_module.__file__).parent / "feed.xsl"

ATOM = "http://www.w3.org/2005/Atom"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
DC = "http://purl.org/dc/elements/1.1/"
MEDIA = "http://search.yahoo.com/mrss/"
FORMATS: tuple[FeedFormat, ...] = ("rss", "atom", "json")
XML_FORMATS: tuple[FeedFormat, ...] = ("rss", "atom")

T0 = datetime(2024, 5, 1, 1, 30, tzinfo=UTC)

CHANNEL = Channel(
    title="Cổng thông tin Đảng bộ Khối",
    link="https://dangbo.example.vn/",
    description="Tin tức, sự kiện của Đảng bộ Khối các cơ quan tỉnh",
    language="vi",
    rights="© Đảng bộ Khối các cơ quan tỉnh",
    ttl=timedelta(minutes=15),
)
HUB = "https://hub.example.net/"

ALL = FeedSpec(name="all", title="Tất cả", description="")
CATEGORY = FeedSpec(
    name="xay-dung-dang",
    title="Xây dựng Đảng",
    description="Tin về công tác xây dựng Đảng",
    category="xay-dung-dang",
)
CATEGORY_TITLES = {"xay-dung-dang": "Xây dựng Đảng", "thoi-su": "Thời sự"}
SOURCE_TITLES = {"baochinhphu": "Báo Chính phủ", "dangcongsan": "Báo Điện tử Đảng Cộng sản Việt Nam"}


def article(article_id: int = 1, **changes: Any) -> Article:
    """A complete article as ingest stores it: NFC text, sanitised HTML, UTC dates."""
    values: dict[str, Any] = {
        "id": article_id,
        "identity": f"url:https://baochinhphu.vn/bai-{article_id}.htm",
        "guid": f"https://baochinhphu.vn/bai-{article_id}.htm",
        "url": f"https://baochinhphu.vn/bai-{article_id}.htm",
        "title": "Hội nghị Ban Chấp hành Đảng bộ tỉnh lần thứ mười lăm",
        "summary": "Sáng nay, Ban Chấp hành Đảng bộ tỉnh khai mạc hội nghị để thảo luận nhiều nội dung.",
        "content_html": (
            '<p>Đồng chí Bí thư Tỉnh ủy <strong>phát biểu</strong> khai mạc hội nghị.</p><p><a href="'
            'https://baochinhphu.vn/" rel="noopener noreferrer">Xem thêm</a></p>'
        ),
        "author": "Nguyễn Thị Hồng Nhung",
        "published": T0 - timedelta(hours=article_id),
        "updated": T0 - timedelta(hours=article_id) + timedelta(minutes=5),
        "first_seen": T0 - timedelta(hours=article_id),
        "image_url": f"https://baochinhphu.vn/anh/{article_id}.jpg",
        "source_id": "baochinhphu",
        "categories": ("xay-dung-dang", "thoi-su"),
    }
    values.update(changes)
    return Article(**values)


def feed_page(
    articles: Iterable[Article] = (),
    *,
    feed: FeedSpec = CATEGORY,
    page: int = 1,
    last_page: int = 1,
    updated: datetime = T0,
) -> FeedPage:
    return FeedPage(
        feed=feed,
        page=page,
        last_page=last_page,
        articles=tuple(articles),
        updated=updated,
        category_titles=CATEGORY_TITLES,
        source_titles=SOURCE_TITLES,
    )


def sample_articles() -> tuple[Article, ...]:
    """Two articles: one complete, one from another source with a non-URL guid, no image,
    no author, a single category, and text given decomposed (NFD)."""
    return (
        article(1),
        article(
            2,
            guid="dcs-98765",
            url="https://dangcongsan.vn/tin/98765.html",
            title=unicodedata.normalize("NFD", "Phát huy vai trò của Mặt trận Tổ quốc & các đoàn thể"),
            summary=unicodedata.normalize("NFD", "Tổng kết công tác năm; phương hướng, nhiệm vụ năm tới."),
            content_html="<p>Nội dung <em>đầy đủ</em> của bài viết.</p>",
            author="",
            image_url=None,
            source_id="dangcongsan",
            categories=("xay-dung-dang",),
        ),
    )


def xml(body: bytes) -> etree._Element:
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))


def parse_with_feedparser(body: bytes) -> Any:
    # A stream: given bytes, feedparser would first try them as a file name.
    parsed = feedparser.parse(
        io.BytesIO(body),
        sanitize_html=False,
        resolve_relative_uris=False,
        response_headers={"content-type": "application/xml; charset=utf-8"},
    )
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def feedparser_text(detail: Any) -> str:
    """A feedparser text value as the text it stands for: feedparser hands HTML-looking
    values back as HTML (escaped), plain ones as they were."""
    value: str = detail["value"]
    return html.unescape(value) if detail["type"] == "text/html" else value


def feedparser_keeps(text: str) -> bool:
    """False for text feedparser cannot give back: it takes text made only of Latin-1
    characters that happen to spell UTF-8 bytes ("Â¡") for mojibake and decodes it again.
    Vietnamese has letters outside Latin-1, so real titles are not affected."""
    try:
        return text.encode("latin-1").decode("utf-8") == text
    except UnicodeError:
        return True


# --- strict format checks -----------------------------------------------------------

RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$"
)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
WEB_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")

RSS_NAMESPACES = {ATOM, CONTENT, DC, MEDIA}
RSS_CHANNEL_ELEMENTS = {
    "title", "link", "description", "language", "copyright", "managingEditor", "webMaster",
    "pubDate", "lastBuildDate", "category", "generator", "docs", "cloud", "ttl", "image",
    "rating", "textInput", "skipHours", "skipDays", "item", f"{{{ATOM}}}link",
}  # fmt: skip
RSS_ITEM_ELEMENTS = {
    "title", "link", "description", "author", "category", "comments", "enclosure", "guid",
    "pubDate", "source", f"{{{CONTENT}}}encoded", f"{{{DC}}}creator", f"{{{MEDIA}}}content",
}  # fmt: skip
RSS_ONCE = {"title", "link", "description", "language", "copyright", "pubDate", "lastBuildDate", "ttl",
            "generator", "docs", "guid", "source", "comments", "enclosure", "author",
            f"{{{CONTENT}}}encoded"}  # fmt: skip
PAGING_RELS = {"first", "previous", "next", "last"}


def _rss_date(element: etree._Element) -> datetime:
    text = element.text or ""
    assert RFC822.match(text), text
    parsed = parsedate_to_datetime(text)
    assert parsed.tzinfo is not None
    return parsed


def check_rss(body: bytes, *, self_url: str) -> etree._Element:
    """RSS 2.0 (rssboard.org specification) checked element by element; returns the channel."""
    root = xml(body)
    assert root.tag == "rss"
    assert root.get("version") == "2.0"
    assert [child.tag for child in root] == ["channel"]
    assert set(root.nsmap.values()) <= RSS_NAMESPACES
    for element in root.iter():
        if isinstance(element.tag, str):
            assert etree.QName(element).namespace in {None, *RSS_NAMESPACES}, element.tag
            assert all(etree.QName(name).namespace is None for name in element.attrib), element.attrib
    channel = root[0]
    tags = [child.tag for child in channel]
    assert set(tags) <= RSS_CHANNEL_ELEMENTS, set(tags) - RSS_CHANNEL_ELEMENTS
    for tag in RSS_ONCE:
        assert tags.count(tag) <= 1, tag
    for required in ("title", "link", "description"):
        assert tags.count(required) == 1, required
        assert (channel.findtext(required) or "").strip(), required
    assert WEB_URL.match(channel.findtext("link") or "")
    assert LANGUAGE.match(channel.findtext("language") or "")
    for name in ("lastBuildDate", "pubDate"):
        if (date := channel.find(name)) is not None:
            _rss_date(date)
    if (ttl := channel.find("ttl")) is not None:
        assert (ttl.text or "").isdigit()
    # atom:link: the self link once, with this page's exact URL; paging and hub links once each.
    links = channel.findall(f"{{{ATOM}}}link")
    rels = [link.get("rel") for link in links]
    assert len(rels) == len(set(rels)), rels
    assert set(rels) <= {"self", "hub", *PAGING_RELS}
    for link in links:
        assert set(link.attrib) <= {"href", "rel", "type"}
        assert WEB_URL.match(link.get("href", "")), link.attrib
        assert len(link) == 0
        assert not (link.text or "").strip()
    (self_link,) = [link for link in links if link.get("rel") == "self"]
    assert self_link.get("href") == self_url
    assert self_link.get("type") == "application/rss+xml"
    for item in channel.findall("item"):
        check_rss_item(item)
    return channel


def check_rss_item(item: etree._Element) -> None:
    tags = [child.tag for child in item]
    assert set(tags) <= RSS_ITEM_ELEMENTS, set(tags) - RSS_ITEM_ELEMENTS
    for tag in RSS_ONCE:
        assert tags.count(tag) <= 1, tag
    assert "title" in tags or "description" in tags
    assert tags.count("guid") == 1
    guid = item.find("guid")
    assert guid is not None
    assert set(guid.attrib) == {"isPermaLink"}
    assert guid.get("isPermaLink") in ("true", "false")
    assert (guid.text or "").strip()
    if guid.get("isPermaLink") == "true":
        assert guid.text == item.findtext("link")
        assert WEB_URL.match(guid.text or "")
    if (link := item.find("link")) is not None:
        assert WEB_URL.match(link.text or "")
    if (published := item.find("pubDate")) is not None:
        _rss_date(published)
    for category in item.findall("category"):
        assert (category.text or "").strip()
        assert set(category.attrib) <= {"domain"}
    if (source := item.find("source")) is not None:
        assert set(source.attrib) == {"url"}
        assert WEB_URL.match(source.get("url", ""))
        assert (source.text or "").strip()
    for creator in item.findall(f"{{{DC}}}creator"):
        assert (creator.text or "").strip()
    for media in item.findall(f"{{{MEDIA}}}content"):
        assert WEB_URL.match(media.get("url", ""))
        assert media.get("medium") == "image"
    if (enclosure := item.find("enclosure")) is not None:
        assert {"url", "length", "type"} <= set(enclosure.attrib)


_ATOM_SCHEMA: etree.RelaxNG | None = None


def atom_schema() -> etree.RelaxNG:
    global _ATOM_SCHEMA
    if _ATOM_SCHEMA is None:
        _ATOM_SCHEMA = etree.RelaxNG(etree.parse(str(SCHEMAS / "atom.rng")))
    return _ATOM_SCHEMA


def _a(name: str) -> str:
    return f"{{{ATOM}}}{name}"


def check_atom(body: bytes, *, self_url: str) -> etree._Element:
    """RFC 4287: the RELAX NG schema of Appendix B, then the rules it cannot say."""
    root = xml(body)
    schema = atom_schema()
    assert schema.validate(root), schema.error_log
    # Appendix B's Schematron rules, and RFC 3339 dates (xsd:dateTime allows no zone).
    feed_has_author = root.find(_a("author")) is not None
    for element in root.iter(_a("updated"), _a("published")):
        assert RFC3339.match(element.text or ""), element.text
    for element in root.iter(_a("id")):
        assert IRI.match(element.text or ""), element.text
    for owner in [root, *root.findall(_a("entry"))]:
        alternates = [(link.get("type"), link.get("hreflang")) for link in owner.findall(_a("link"))
                      if link.get("rel", "alternate") == "alternate"]  # fmt: skip
        assert len(alternates) == len(set(alternates))
    for entry in root.findall(_a("entry")):
        assert (
            feed_has_author
            or entry.find(_a("author")) is not None
            or entry.find(f"{_a('source')}/{_a('author')}") is not None
        )
        if entry.find(_a("content")) is None:
            assert any(link.get("rel", "alternate") == "alternate" for link in entry.findall(_a("link")))
        # A source keeps the metadata every feed must have (the W3C feed validator warns otherwise).
        for source in entry.findall(_a("source")):
            assert all(source.find(_a(name)) is not None for name in ("id", "title", "updated"))
    (self_link,) = [link for link in root.findall(_a("link")) if link.get("rel") == "self"]
    assert self_link.get("href") == self_url
    return root


def check_json(body: bytes) -> dict[str, Any]:
    """JSON Feed 1.1 against tests/schemas/jsonfeed-1.1.json; UTF-8 without a BOM."""
    assert not body.startswith(b"\xef\xbb\xbf")
    document = json.loads(body.decode("utf-8"))
    schema = json.loads((SCHEMAS / "jsonfeed-1.1.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(document)
    assert isinstance(document, dict)
    return document


def check(fmt: FeedFormat, body: bytes, page: FeedPage, channel: Channel = CHANNEL) -> None:
    self_url = feed_url(channel, page.feed.name, fmt, page.page)
    if fmt == "rss":
        check_rss(body, self_url=self_url)
    elif fmt == "atom":
        check_atom(body, self_url=self_url)
    else:
        assert check_json(body)["feed_url"] == self_url


# --- the strict checks themselves catch what they are for ---------------------------------


def test_strict_checks_reject_invalid_documents() -> None:
    page = feed_page(sample_articles())
    rss = render("rss", CHANNEL, page).body
    with pytest.raises(AssertionError):
        check_rss(
            rss.replace(b'isPermaLink="false"', b'isPermaLink="no"'),
            self_url=feed_url(CHANNEL, "xay-dung-dang", "rss"),
        )
    with pytest.raises(AssertionError):
        check_rss(
            rss.replace(b"<pubDate>Wed,", b"<pubDate>Thu,").replace(b"+0000", b"GMT+7"),
            self_url=feed_url(CHANNEL, "xay-dung-dang", "rss"),
        )
    atom = render("atom", CHANNEL, page).body
    with pytest.raises(AssertionError):
        check_atom(
            re.sub(rb"<id>[^<]*</id>", b"", atom, count=1),
            self_url=feed_url(CHANNEL, "xay-dung-dang", "atom"),
        )
    with pytest.raises(AssertionError):
        check_atom(
            atom.replace(b"+00:00</updated>", b"</updated>", 1),
            self_url=feed_url(CHANNEL, "xay-dung-dang", "atom"),
        )
    document = json.loads(render("json", CHANNEL, page).body)
    document["items"][0]["date_published"] = "2024-05-01 08:00"
    with pytest.raises(jsonschema.ValidationError):
        check_json(json.dumps(document).encode())
    del document["items"][0]["content_html"]
    document["items"][0]["date_published"] = "2024-05-01T08:00:00Z"
    with pytest.raises(jsonschema.ValidationError):
        check_json(json.dumps(document).encode())


# --- addresses and identity ---------------------------------------------------------------


def test_feed_url() -> None:
    assert feed_url(CHANNEL, "all", "rss") == "https://dangbo.example.vn/feeds/all.rss"
    assert feed_url(CHANNEL, "thoi-su", "atom", 1) == "https://dangbo.example.vn/feeds/thoi-su.atom"
    assert feed_url(CHANNEL, "source-baochinhphu", "json", 3) == (
        "https://dangbo.example.vn/feeds/source-baochinhphu.json?page=3"
    )
    assert STYLESHEET_PATH == "feeds/feed.xsl"


@pytest.mark.parametrize(
    "guid",
    [
        "https://baochinhphu.vn/bai-1.htm",
        "http://example.com/?p=12",
        "tag:baochinhphu.vn,2024-05-01:12345",
        "TAG:example.org,2005:entry",
    ],
)
def test_item_id_keeps_a_global_guid(guid: str) -> None:
    assert item_id(article(guid=guid), CHANNEL) == guid


@pytest.mark.parametrize(
    "guid",
    [
        None,
        "",
        "12345",
        "/bai-1.htm",
        "urn:uuid:1234",
        "javascript:alert(1)",
        "https://a b/",
        "tag:",
        "ftp://x/y",
    ],
)
def test_item_id_mints_a_tag_uri_otherwise(guid: str | None) -> None:
    a = article(17, guid=guid, first_seen=datetime(2023, 12, 31, 23, 59, tzinfo=UTC))
    assert item_id(a, CHANNEL) == "tag:dangbo.example.vn,2023-12-31:article-17"


def test_item_id_survives_a_change_of_url_and_of_content() -> None:
    before = article(5, guid="5", url="https://old.example/bai-5")
    after = replace(
        before, url="https://new.example/bai-5", title="Tiêu đề mới", updated=T0 + timedelta(days=3)
    )
    assert item_id(before, CHANNEL) == item_id(after, CHANNEL)
    host_with_port = replace(CHANNEL, link="https://Dangbo.Example.vn:8443/tin/")
    assert item_id(before, host_with_port).startswith("tag:dangbo.example.vn,")


def test_guid_is_a_permalink_only_when_it_is_the_article_url() -> None:
    seen = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    articles = (
        article(1),  # guid == url
        article(2, guid="https://baochinhphu.vn/?p=2"),  # a URL, but not the article's
        article(3, guid=None, first_seen=seen),
        article(4, guid=None, url=None, first_seen=seen),
    )
    channel = check_rss(
        render("rss", CHANNEL, feed_page(articles)).body, self_url=feed_url(CHANNEL, "xay-dung-dang", "rss")
    )
    guids = [(guid.text, guid.get("isPermaLink")) for guid in channel.iter("guid")]
    assert guids == [
        ("https://baochinhphu.vn/bai-1.htm", "true"),
        ("https://baochinhphu.vn/?p=2", "false"),
        ("tag:dangbo.example.vn,2024-05-01:article-3", "false"),
        ("tag:dangbo.example.vn,2024-05-01:article-4", "false"),
    ]


# --- FeedDocument -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("rss", "application/rss+xml; charset=utf-8"),
        ("atom", "application/atom+xml; charset=utf-8"),
        ("json", "application/feed+json; charset=utf-8"),
    ],
)
def test_document_metadata(fmt: FeedFormat, content_type: str) -> None:
    updated = datetime(2024, 5, 1, 1, 30, 15, 123456, tzinfo=UTC)
    document = render(fmt, CHANNEL, feed_page(sample_articles(), page=2, last_page=3, updated=updated))
    assert document.name == "xay-dung-dang"
    assert document.format == fmt
    assert document.page == 2
    assert document.content_type == content_type
    assert document.etag == '"' + hashlib.sha256(document.body).hexdigest()[:32] + '"'
    assert document.last_modified == updated


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_is_deterministic(fmt: FeedFormat) -> None:
    first = render(fmt, CHANNEL, feed_page(sample_articles(), last_page=2))
    second = render(fmt, replace(CHANNEL), feed_page(sample_articles(), last_page=2))
    assert first.body == second.body
    assert first.etag == second.etag
    if fmt != "json":  # JSON Feed has no feed-level date
        changed = render(
            fmt, CHANNEL, feed_page(sample_articles(), last_page=2, updated=T0 + timedelta(seconds=1))
        )
        assert changed.etag != first.etag


# --- validity -----------------------------------------------------------------------------------

PAGES = {
    "sample": feed_page(sample_articles()),
    "empty": feed_page(),
    "empty-all": feed_page(feed=ALL),
    "minimal": feed_page(
        [
            article(1, url=None, author="", image_url=None, summary="", categories=()),
            article(2, url=None, author="", image_url=None, summary="", content_html="", guid=None),
            article(3, summary="", content_html="", title=""),
            article(4, author="   ", summary="  ", image_url="javascript:alert(1)", url="data:text/html,x"),
        ]
    ),
    "middle-page": feed_page(sample_articles(), page=2, last_page=3),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", PAGES)
def test_output_is_valid(fmt: FeedFormat, name: str) -> None:
    page = PAGES[name]
    check(fmt, render(fmt, CHANNEL, page).body, page)
    hub = replace(CHANNEL, websub_hub=HUB)
    check(fmt, render(fmt, hub, page).body, page, hub)


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_feedparser_reads_the_output_as_its_format(fmt: FeedFormat) -> None:
    parsed = parse_with_feedparser(render(fmt, CHANNEL, feed_page(sample_articles())).body)
    assert parsed.version == {"rss": "rss20", "atom": "atom10"}[fmt]


def test_empty_feed() -> None:
    page = feed_page()
    channel = check_rss(render("rss", CHANNEL, page).body, self_url=feed_url(CHANNEL, "xay-dung-dang", "rss"))
    assert channel.findall("item") == []
    assert channel.findtext("lastBuildDate") == "Wed, 01 May 2024 01:30:00 +0000"
    root = check_atom(render("atom", CHANNEL, page).body, self_url=feed_url(CHANNEL, "xay-dung-dang", "atom"))
    assert root.findall(_a("entry")) == []
    assert check_json(render("json", CHANNEL, page).body)["items"] == []


# --- channel metadata ------------------------------------------------------------------------------


def test_rss_channel() -> None:
    page = feed_page(sample_articles())
    channel = check_rss(render("rss", CHANNEL, page).body, self_url=feed_url(CHANNEL, "xay-dung-dang", "rss"))
    assert channel.findtext("title") == "Cổng thông tin Đảng bộ Khối – Xây dựng Đảng"
    assert channel.findtext("link") == CHANNEL.link
    assert channel.findtext("description") == "Tin về công tác xây dựng Đảng"
    assert channel.findtext("language") == "vi"
    assert channel.findtext("copyright") == CHANNEL.rights
    assert channel.findtext("ttl") == "15"
    assert channel.findtext("lastBuildDate") == "Wed, 01 May 2024 01:30:00 +0000"
    everything = check_rss(
        render("rss", CHANNEL, feed_page(feed=ALL)).body, self_url=feed_url(CHANNEL, "all", "rss")
    )
    assert everything.findtext("title") == CHANNEL.title
    assert everything.findtext("description") == CHANNEL.description


def test_atom_feed_metadata() -> None:
    page = feed_page(sample_articles(), page=2, last_page=2)
    root = check_atom(
        render("atom", CHANNEL, page).body, self_url=feed_url(CHANNEL, "xay-dung-dang", "atom", 2)
    )
    assert root.findtext(_a("id")) == "https://dangbo.example.vn/feeds/xay-dung-dang.atom"  # page 1's URL
    assert root.findtext(_a("title")) == "Cổng thông tin Đảng bộ Khối – Xây dựng Đảng"
    assert root.findtext(_a("subtitle")) == "Tin về công tác xây dựng Đảng"
    assert root.findtext(_a("rights")) == CHANNEL.rights
    assert root.findtext(_a("updated")) == "2024-05-01T01:30:00+00:00"
    assert root.findtext(f"{_a('author')}/{_a('name')}") == CHANNEL.title
    assert root.find(_a("generator")) is not None
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "vi"
    alternate = root.find(f"{_a('link')}[@rel='alternate']")
    assert alternate is not None
    assert alternate.get("href") == CHANNEL.link


def test_json_feed_metadata() -> None:
    hub = replace(CHANNEL, websub_hub=HUB)
    document = check_json(render("json", hub, feed_page(sample_articles(), last_page=2)).body)
    assert list(document)[:5] == ["version", "title", "home_page_url", "feed_url", "description"]
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["title"] == "Cổng thông tin Đảng bộ Khối – Xây dựng Đảng"
    assert document["home_page_url"] == CHANNEL.link
    assert document["feed_url"] == "https://dangbo.example.vn/feeds/xay-dung-dang.json"
    assert document["next_url"] == "https://dangbo.example.vn/feeds/xay-dung-dang.json?page=2"
    assert document["language"] == "vi"
    assert document["authors"] == [{"name": CHANNEL.title, "url": CHANNEL.link}]
    assert document["hubs"] == [{"type": "WebSub", "url": HUB}]


def test_stylesheet_instruction_in_xml_formats() -> None:
    for fmt in XML_FORMATS:
        body = render(fmt, CHANNEL, feed_page()).body
        assert body.splitlines()[1] == b'<?xml-stylesheet type="text/xsl" href="feed.xsl"?>'
        # Relative to the feed, which is served next to it: resolves to the stylesheet path.
        assert feed_url(CHANNEL, "x", "rss").rsplit("/", 1)[0] + "/feed.xsl" == CHANNEL.link + STYLESHEET_PATH


# --- paging (RFC 5005) and WebSub ------------------------------------------------------------------


def _rss_links(body: bytes) -> dict[str, str]:
    root = xml(body)
    return {link.get("rel", ""): link.get("href", "") for link in root.iter(f"{{{ATOM}}}link")}


def _atom_links(body: bytes) -> dict[str, str]:
    root = xml(body)
    return {link.get("rel", ""): link.get("href", "") for link in root.findall(_a("link"))}


@pytest.mark.parametrize(
    ("page", "last_page", "expected"),
    [
        (1, 1, {}),
        (1, 3, {"first": 1, "next": 2, "last": 3}),
        (2, 3, {"first": 1, "previous": 1, "next": 3, "last": 3}),
        (3, 3, {"first": 1, "previous": 2, "last": 3}),
    ],
)
def test_paging_links(page: int, last_page: int, expected: dict[str, int]) -> None:
    feed = feed_page(sample_articles(), page=page, last_page=last_page)
    for fmt, links in zip(XML_FORMATS, (_rss_links, _atom_links), strict=True):
        body = render(fmt, CHANNEL, feed).body
        found = links(body)
        assert found.pop("self") == feed_url(CHANNEL, "xay-dung-dang", fmt, page)
        found.pop("alternate", None)
        assert found == {rel: feed_url(CHANNEL, "xay-dung-dang", fmt, n) for rel, n in expected.items()}
        parsed = parse_with_feedparser(body)
        assert {link["rel"] for link in parsed.feed.links} >= {"self", *expected}
    document = json.loads(render("json", CHANNEL, feed).body)
    assert document["feed_url"] == feed_url(CHANNEL, "xay-dung-dang", "json", page)
    if "next" in expected:
        assert document["next_url"] == feed_url(CHANNEL, "xay-dung-dang", "json", expected["next"])
    else:
        assert "next_url" not in document


def test_hub_link_only_when_configured() -> None:
    hub = replace(CHANNEL, websub_hub=HUB)
    page = feed_page(sample_articles())
    assert _rss_links(render("rss", hub, page).body)["hub"] == HUB
    assert _atom_links(render("atom", hub, page).body)["hub"] == HUB
    assert "hub" not in _rss_links(render("rss", CHANNEL, page).body)
    assert "hub" not in _atom_links(render("atom", CHANNEL, page).body)
    assert "hubs" not in json.loads(render("json", CHANNEL, page).body)


# --- items, field by field, read back by feedparser ------------------------------------------------


def expected_items(page: FeedPage, channel: Channel = CHANNEL) -> list[dict[str, Any]]:
    """What every format must say about each article: NFC text, UTC dates to the second."""
    return [
        {
            "id": item_id(a, channel),
            "url": a.url,
            "title": clean_line(a.title) or UNTITLED,
            "summary": nfc(a.summary).strip(),
            "content_html": nfc(a.content_html),
            "author": clean_line(a.author),
            "published": a.published.replace(microsecond=0),
            "updated": a.updated.replace(microsecond=0),
            "image": a.image_url,
            "categories": [(slug, CATEGORY_TITLES.get(slug, slug)) for slug in a.categories],
            "source": (a.source_id, SOURCE_TITLES.get(a.source_id, a.source_id)),
        }
        for a in page.articles
    ]


def _struct_time(value: Any) -> datetime:
    year, month, day, hour, minute, second = value[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_rss_items_round_trip_through_feedparser() -> None:
    page = feed_page(sample_articles())
    parsed = parse_with_feedparser(render("rss", CHANNEL, page).body)
    assert parsed.feed.title == "Cổng thông tin Đảng bộ Khối – Xây dựng Đảng"
    for entry, want in zip(parsed.entries, expected_items(page), strict=True):
        assert entry.id == want["id"]
        assert entry.link == want["url"]
        assert feedparser_text(entry.title_detail) == want["title"]
        assert feedparser_text(entry.summary_detail) == want["summary"]
        assert entry.content[0]["value"] == want["content_html"]
        assert entry.get("author", "") == want["author"]
        assert _struct_time(entry.published_parsed) == want["published"]
        assert [tag["term"] for tag in entry.tags] == [title for _, title in want["categories"]]
        source_id, source_title = want["source"]
        assert entry.source == {
            "href": feed_url(CHANNEL, f"source-{source_id}", "rss"),
            "title": source_title,
        }
        media = [m["url"] for m in entry.get("media_content", [])]
        assert media == ([want["image"]] if want["image"] else [])


def test_atom_entries_round_trip_through_feedparser() -> None:
    page = feed_page(sample_articles())
    parsed = parse_with_feedparser(render("atom", CHANNEL, page).body)
    assert parsed.feed.title == "Cổng thông tin Đảng bộ Khối – Xây dựng Đảng"
    assert parsed.feed.id == "https://dangbo.example.vn/feeds/xay-dung-dang.atom"
    for entry, want in zip(parsed.entries, expected_items(page), strict=True):
        assert entry.id == want["id"]
        assert [(link["rel"], link["href"], link["type"]) for link in entry.links] == [
            ("alternate", want["url"], "text/html")
        ]
        assert entry.title_detail["type"] == "text/plain"
        assert entry.title == want["title"]
        assert entry.summary_detail["type"] == "text/plain"
        assert entry.summary == want["summary"]
        assert [(c["type"], c["value"]) for c in entry.content] == [("text/html", want["content_html"])]
        if want["author"]:
            assert [a["name"] for a in entry.authors] == [want["author"]]
        else:
            assert "authors" not in entry  # the feed's author applies
        assert _struct_time(entry.published_parsed) == want["published"]
        assert _struct_time(entry.updated_parsed) == want["updated"]
        assert [(t["term"], t["label"]) for t in entry.tags] == want["categories"]
        source_id, source_title = want["source"]
        assert entry.source["title"] == source_title
        assert entry.source["id"] == feed_url(CHANNEL, f"source-{source_id}", "atom")
        # The source feed as it was when this version of the entry came from it.
        assert _struct_time(entry.source["updated_parsed"]) == want["updated"]
        media = [m["url"] for m in entry.get("media_content", [])]
        assert media == ([want["image"]] if want["image"] else [])


def test_json_items() -> None:
    page = feed_page(sample_articles())
    document = check_json(render("json", CHANNEL, page).body)
    for item, want in zip(document["items"], expected_items(page), strict=True):
        assert item["id"] == want["id"]
        assert item["url"] == want["url"]
        assert item["title"] == want["title"]
        assert item["summary"] == want["summary"]
        assert item["content_html"] == want["content_html"]
        assert item.get("authors") == ([{"name": want["author"]}] if want["author"] else None)
        assert datetime.fromisoformat(item["date_published"]) == want["published"]
        assert datetime.fromisoformat(item["date_modified"]) == want["updated"]
        assert item.get("image") == want["image"]
        assert item["tags"] == [title for _, title in want["categories"]]
        source_id, source_title = want["source"]
        assert item["_syndication"] == {"source": source_title, "source_id": source_id}


@pytest.mark.parametrize("fmt", FORMATS)
def test_vietnamese_text_is_nfc_byte_exact(fmt: FeedFormat) -> None:
    page = feed_page(sample_articles())
    body = render(fmt, CHANNEL, page).body
    text = body.decode("utf-8")
    assert unicodedata.is_normalized("NFC", text)
    for want in expected_items(page):
        assert (
            want["title"].encode("utf-8") in body or html.escape(want["title"], quote=False).encode() in body
        )
    # The decomposed input of the second article came out composed.
    assert "Phát huy vai trò của Mặt trận Tổ quốc".encode() in body


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_our_own_ingest(fmt: FeedFormat) -> None:
    """A portal running this software reads our feeds back as they were."""
    page = feed_page(sample_articles())
    parsed = parse_feed(
        render(fmt, CHANNEL, page).body, url=feed_url(CHANNEL, "x", fmt), declared_charset="utf-8", tz=UTC
    )
    assert parsed.title == "Cổng thông tin Đảng bộ Khối – Xây dựng Đảng"
    assert parsed.link == CHANNEL.link
    for data, a, want in zip(parsed.articles, page.articles, expected_items(page), strict=True):
        assert data.guid == want["id"]
        assert data.url == want["url"]
        assert data.title == want["title"]
        assert data.summary == " ".join(want["summary"].split())
        assert data.content_html == sanitize_html(a.content_html, base_url=a.url)
        # Atom and JSON Feed name the site as the feed's author; RSS has no such field.
        assert data.author == (want["author"] or ("" if fmt == "rss" else CHANNEL.title))
        assert data.published == want["published"]
        assert data.image_url == want["image"]
        if fmt != "rss":
            assert data.updated == want["updated"]


# --- articles missing optional fields -----------------------------------------------------------


def test_article_without_url_author_image_summary() -> None:
    bare = article(
        9, guid=None, url=None, author="", image_url=None, summary="", categories=(), first_seen=T0
    )
    page = feed_page([bare])
    minted = "tag:dangbo.example.vn,2024-05-01:article-9"

    channel = check_rss(render("rss", CHANNEL, page).body, self_url=feed_url(CHANNEL, "xay-dung-dang", "rss"))
    (item,) = channel.findall("item")
    assert [child.tag for child in item] == ["title", "guid", "pubDate", "source", f"{{{CONTENT}}}encoded"]
    assert item.findtext(f"{{{CONTENT}}}encoded") == bare.content_html
    assert item.findtext("guid") == minted

    root = check_atom(render("atom", CHANNEL, page).body, self_url=feed_url(CHANNEL, "xay-dung-dang", "atom"))
    (entry,) = root.findall(_a("entry"))
    assert entry.find(_a("link")) is None
    assert entry.find(_a("author")) is None
    assert entry.find(_a("summary")) is None
    assert entry.findtext(_a("content")) == bare.content_html

    (item_json,) = check_json(render("json", CHANNEL, page).body)["items"]
    assert set(item_json) == {
        "id",
        "title",
        "content_html",
        "date_published",
        "date_modified",
        "_syndication",
    }


def test_article_without_any_text_is_still_valid() -> None:
    empty = article(
        10, url=None, guid=None, title="\x00", summary="", content_html="", author="", image_url=None
    )
    page = feed_page([empty])
    for fmt in FORMATS:
        check(fmt, render(fmt, CHANNEL, page).body, page)
    root = xml(render("atom", CHANNEL, page).body)
    assert root.findtext(f"{_a('entry')}/{_a('title')}") == UNTITLED
    content = root.find(f"{_a('entry')}/{_a('content')}")
    assert content is not None  # an entry needs content or an alternate link
    assert content.text is None


def test_unsafe_urls_are_not_emitted() -> None:
    page = feed_page([article(1, url="javascript:alert(1)", image_url="data:image/png;base64,AAAA")])
    for fmt in FORMATS:
        body = render(fmt, CHANNEL, page).body
        assert b"javascript:" not in body
        assert b"data:image" not in body


# --- escaping and sanitisation ------------------------------------------------------------------------

TRICKY_CONTENT = (
    "<p>a ]]&gt; b]]> &lt;script&gt;alert(1)&lt;/script&gt; &amp;lt;img src=x onerror=alert(1)&amp;gt;</p>"
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_content_is_escaped_never_decoded(fmt: FeedFormat) -> None:
    """Render escapes content once, so a reader decoding once gets the sanitised HTML back
    exactly: escaped markup in it stays escaped text."""
    page = feed_page([article(1, content_html=TRICKY_CONTENT, summary="Giá < 5 triệu & <script>x</script>")])
    body = render(fmt, CHANNEL, page).body
    if fmt == "json":
        item = json.loads(body)["items"][0]
        assert item["content_html"] == TRICKY_CONTENT
        assert item["summary"] == "Giá < 5 triệu & <script>x</script>"
        return
    root = xml(body)
    if fmt == "rss":
        assert root.findtext(f".//{{{CONTENT}}}encoded") == TRICKY_CONTENT
        # A plain-text summary becomes HTML that shows the same text, never a tag.
        assert root.findtext(".//item/description") == "Giá &lt; 5 triệu &amp; &lt;script&gt;x&lt;/script&gt;"
    else:
        assert root.findtext(f".//{_a('content')}") == TRICKY_CONTENT
        assert root.findtext(f".//{_a('summary')}") == "Giá < 5 triệu & <script>x</script>"
    assert b"CDATA" not in body
    assert b"<script" not in body
    assert b"<img" not in body


def test_control_characters_never_reach_the_output() -> None:
    dirty = article(
        1,
        title="Tin\x00 nóng\x0b\x1f\ufffe",
        summary="Tóm\x08 tắt\x7f\x85",
        content_html="<p>Nội\x0c dung\ud800</p>",
        author="Tác\x01 giả",
        source_id="baochinhphu",
    )
    page = feed_page([dirty], feed=replace(CATEGORY, title="Xây dựng\x1b Đảng"))
    channel = replace(CHANNEL, title="Cổng\x00 thông tin", description="Mô\x0c tả", rights="©\x07 Đảng bộ")
    for fmt in FORMATS:
        body = render(fmt, channel, page).body
        check(fmt, body, page, channel)
        assert "Cổng thông tin – Xây dựng Đảng" in body.decode()
        text = body.decode("utf-8")
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]", text)
        assert "Tin nóng" in text
        assert "Tóm tắt" in text
        assert "Nội dung" in text
        assert "Tác giả" in text


SPECIAL = st.sampled_from(
    [
        "]]>", "<![CDATA[", "<script>alert(1)</script>", "</b>", "<b>", "&amp;", "&lt;", "&#0;", "&", "<",
        ">",
        '"', "'", "\x00", "\x0b", "\x1b", "\x7f", "\x85", "\ud800", "\ufffe", "\r\n", "\r", "\t", " ",
        "\u200b", "\u00ad", "Tiếng Việt", unicodedata.normalize("NFD", "Hoà bình, Uỷ ban, Đà Nẵng"),
    ]
)  # fmt: skip
RSS_MARKUP = re.compile(r"<[^\s<]|&#?\w+;")
"""What readers taking RSS titles for HTML would read as a tag or an entity: such titles are escaped."""
ANY_TEXT = st.lists(st.one_of(st.text(max_size=20), SPECIAL), max_size=8).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=ANY_TEXT, summary=ANY_TEXT, author=ANY_TEXT)
def test_any_text_gives_well_formed_feeds_that_round_trip(title: str, summary: str, author: str) -> None:
    a = article(1, title=title, summary=summary, author=author)
    page = feed_page([a])
    want_title = clean_line(title) or UNTITLED
    want_summary = nfc(summary).strip()
    want_author = clean_line(author)

    rss = render("rss", CHANNEL, page).body
    channel = check_rss(rss, self_url=feed_url(CHANNEL, "xay-dung-dang", "rss"))
    item = channel.find("item")
    assert item is not None
    title_text = item.findtext("title")
    assert title_text == (
        html.escape(want_title, quote=False) if RSS_MARKUP.search(want_title) else want_title
    )
    assert html.unescape(item.findtext("description") or "") == want_summary
    # dc:creator is escaped like a title (readers take it for HTML as readily).
    rss_author = html.escape(want_author, quote=False) if RSS_MARKUP.search(want_author) else want_author
    assert item.findtext(f"{{{DC}}}creator", default="") == rss_author
    (entry,) = parse_with_feedparser(rss).entries
    # RSS leaves open whether a title is text or HTML; feedparser guesses, and reports its guess.
    if feedparser_keeps(want_title):
        assert feedparser_text(entry.title_detail) == want_title
    if want_summary and feedparser_keeps(want_summary):
        assert feedparser_text(entry.summary_detail) == want_summary
    if feedparser_keeps(want_author):
        assert entry.get("author", "") == rss_author  # feedparser hands authors back as they are

    atom = render("atom", CHANNEL, page).body
    check_atom(atom, self_url=feed_url(CHANNEL, "xay-dung-dang", "atom"))
    (entry,) = parse_with_feedparser(atom).entries
    if feedparser_keeps(want_title):
        assert entry.title == want_title
    if want_summary and feedparser_keeps(want_summary):  # without one, feedparser copies the content
        assert entry.summary == want_summary
    if feedparser_keeps(want_author):
        assert [a["name"] for a in entry.get("authors", [])] == ([want_author] if want_author else [])

    item_json = check_json(render("json", CHANNEL, page).body)["items"][0]
    assert item_json["title"] == want_title
    assert item_json.get("summary", "") == want_summary
    assert item_json.get("authors", [{"name": ""}])[0]["name"] == want_author


@pytest.mark.parametrize(
    "author", ["<script>alert(1)</script> Nguyễn Văn A", "Lê &amp; Trần", "Hà <b>Nội</b>", "Phạm & Cộng sự"]
)
def test_rss_authors_are_escaped_like_titles(author: str) -> None:
    """``dc:creator`` is as open to being read as HTML as a title is; an author stored before
    ingest made them plain text must not become markup for such readers either."""
    body = render("rss", CHANNEL, feed_page([article(1, author=author)])).body

    creator = xml(body).findtext(f".//item/{{{DC}}}creator")

    assert creator == (html.escape(author, quote=False) if RSS_MARKUP.search(author) else author)
    assert html.unescape(creator or "") == author  # a reader decoding it as HTML shows the text


def test_stylesheet_shows_an_escaped_author_as_the_text_it_is() -> None:
    author = "Hà <b>Nội</b> &amp; Lê"
    body = render("rss", CHANNEL, feed_page([article(1, author=author)])).body
    page: Any = lxml_html.fromstring(str(etree.XSLT(etree.parse(str(XSL)))(xml(body))))
    assert page.xpath("//article//b") == []
    assert author in page.text_content()


# --- the XSL stylesheet -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_stylesheet_renders_a_readable_page(fmt: FeedFormat) -> None:
    articles = (
        *sample_articles(),
        article(
            3,
            title="Hỏi &amp; đáp: <b>lãi suất</b>",
            summary="Q&A: giá < 5 triệu <script>alert(1)</script>",
            url=None,
        ),
    )
    page = feed_page(articles, page=2, last_page=3)
    transform = etree.XSLT(etree.parse(str(XSL)))
    result = str(transform(xml(render(fmt, CHANNEL, page).body)))
    document: Any = lxml_html.fromstring(result)  # lxml-stubs lacks HtmlElement's methods
    assert document.xpath("//script | //article//b") == []  # markup in text stays text
    assert document.findtext(".//h1") == "Cổng thông tin Đảng bộ Khối – Xây dựng Đảng"
    assert "Tin về công tác xây dựng Đảng" in document.text_content()
    about = document.find_class("about")[0].text_content()
    assert "Đây là nguồn tin (feed)" in about
    assert feed_url(CHANNEL, "xay-dung-dang", fmt) in about  # the address to subscribe to: page 1
    headings = document.findall(".//article/h2")
    assert [h.text_content() for h in headings] == [clean_line(a.title) for a in articles]
    assert [a.get("href") for h in headings for a in h.findall("a")] == [a.url for a in articles if a.url]
    texts = [p.text_content() for p in document.xpath("//article/p[not(time)]")]
    assert texts == [nfc(a.summary) for a in articles]
    assert "01/05/2024 00:30 (UTC)" in document.text_content()  # article 1, published 00:30 UTC
    nav = {a.text_content(): a.get("href") for a in document.findall(".//nav/a")}
    assert nav == {
        "← Trang mới hơn": feed_url(CHANNEL, "xay-dung-dang", fmt, 1),
        "Trang cũ hơn →": feed_url(CHANNEL, "xay-dung-dang", fmt, 3),
    }


def test_stylesheet_on_an_empty_feed() -> None:
    transform = etree.XSLT(etree.parse(str(XSL)))
    for fmt in XML_FORMATS:
        result = str(transform(xml(render(fmt, CHANNEL, feed_page(feed=ALL)).body)))
        assert "Chưa có bài nào." in result


# --- OPML ----------------------------------------------------------------------------------------------

FEEDS = (
    ALL,
    CATEGORY,
    FeedSpec(name="source-baochinhphu", title="Báo Chính phủ", description="", source_id="baochinhphu"),
)


def test_opml_lists_every_feed() -> None:
    body = render_opml(CHANNEL, FEEDS)
    root = xml(body)
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    assert root.findtext("head/title") == CHANNEL.title
    assert root.find("head/dateCreated") is None  # no clock
    outlines = root.findall("body/outline")
    assert [o.get("xmlUrl") for o in outlines] == [feed_url(CHANNEL, f.name, "rss") for f in FEEDS]
    assert [o.get("htmlUrl") for o in outlines] == [f"{CHANNEL.link}feeds/{f.name}/" for f in FEEDS]
    assert {o.get("type") for o in outlines} == {"rss"}
    assert [o.get("text") for o in outlines] == [
        CHANNEL.title,
        "Cổng thông tin Đảng bộ Khối – Xây dựng Đảng",
        "Cổng thông tin Đảng bộ Khối – Báo Chính phủ",
    ]
    assert all(o.get("title") == o.get("text") for o in outlines)
    assert render_opml(CHANNEL, FEEDS) == body


# --- golden files ---------------------------------------------------------------------------------------


def golden_page() -> FeedPage:
    return feed_page(sample_articles(), page=1, last_page=2)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("xay-dung-dang.rss", lambda: render("rss", replace(CHANNEL, websub_hub=HUB), golden_page()).body),
        ("xay-dung-dang.atom", lambda: render("atom", replace(CHANNEL, websub_hub=HUB), golden_page()).body),
        ("xay-dung-dang.json", lambda: render("json", replace(CHANNEL, websub_hub=HUB), golden_page()).body),
        ("feeds.opml", lambda: render_opml(CHANNEL, FEEDS)),
    ],
)
def test_golden(name: str, make: Any) -> None:
    body: bytes = make()
    path = GOLDEN / name
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    assert body == path.read_bytes(), f"{name} changed; regenerate with SYNDICATION_REGENERATE_GOLDEN=1"
