"""Parsing feeds: golden files under tests/data/feeds/ (input and ``.expected.json`` beside it),
plus the hostile documents a source can send."""

from __future__ import annotations

import json
import pickle
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syndication.errors import ParseError
from syndication.ingest.parse_feed import parse_feed
from syndication.ingest.xml_safety import _cap_author_fields, _split_prolog
from syndication.types import ArticleData, ParsedDocument

FEEDS = Path(__file__).parent / "data" / "feeds"
SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")

GOLDEN = {
    "vi_rss2.xml": ("https://vnexpress.net/rss/thoi-su.rss", "utf-8"),
    "atom10.xml": ("https://tuoitre.vn/rss/giao-duc.atom", None),
    "atom03.xml": ("https://blog.example.vn/atom.xml", None),
    "rss090.xml": ("https://danang.example.vn/rss.rdf", None),
    "rss10.xml": ("https://hue.example.vn/rss", "utf-8"),
    "rss091.xml": ("https://cantho.example.vn/rss.xml", None),
    "jsonfeed11.json": ("https://dantri.com.vn/feeds/suc-khoe.json", "utf-8"),
    "jsonfeed10.json": ("https://thanhnien.vn/feed.json", None),
    "malformed.xml": ("https://laodong.example.vn/rss", "utf-8"),
    "billion_laughs.xml": ("https://example.vn/rss", None),
    "cp1258_mislabelled.xml": ("https://nld.example.vn/rss/thoi-su.rss", "utf-8"),
    "xss.xml": ("https://xss.example.vn/rss", None),
}


def parse(name: str) -> ParsedDocument:
    url, charset = GOLDEN[name]
    return parse_feed((FEEDS / name).read_bytes(), url=url, declared_charset=charset, tz=SAIGON)


def parse_bytes(content: bytes, url: str = "https://example.vn/rss") -> ParsedDocument:
    return parse_feed(content, url=url, declared_charset=None, tz=SAIGON)


def plain(value: object) -> Any:
    """A ``ParsedDocument`` as the JSON of its ``.expected.json`` file."""
    if isinstance(value, datetime):
        assert value.tzinfo is UTC
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, ParsedDocument | ArticleData):
        return {name: plain(getattr(value, name)) for name in type(value).__slots__}
    return value


def all_text(doc: ParsedDocument) -> str:
    return json.dumps(plain(doc), ensure_ascii=False)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name: str) -> None:
    expected_file = FEEDS / (name.rsplit(".", 1)[0] + ".expected.json")
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    assert plain(parse(name)) == expected


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_text_is_nfc_and_every_url_absolute(name: str) -> None:
    doc = parse(name)
    for article in doc.articles:
        for text in (article.title, article.summary, article.content_html, article.author, *article.tags):
            assert unicodedata.is_normalized("NFC", text)
        for url in (article.url, article.image_url):
            assert url is None or urlsplit(url).scheme in {"http", "https"}


def test_vietnamese_rss2() -> None:
    doc = parse("vi_rss2.xml")
    assert doc.title == "VnExpress RSS - Thời sự"
    assert doc.link == "https://vnexpress.net/thoi-su"
    assert doc.ttl == timedelta(minutes=15)
    assert doc.warnings == ()
    first, second, third = doc.articles
    assert first.published == datetime(2026, 11, 27, 8, 30, tzinfo=UTC)  # 15:30 +0700
    assert first.tags == ("Thời sự", "Mưa lũ")
    assert first.author == "Nguyễn Văn Hải"
    assert "<script" not in first.content_html
    assert 'href="https://vnexpress.net/tag/mua-lu-123"' in first.content_html
    assert (
        first.image_url == "https://i1-vnexpress.vnecdn.net/2026/11/27/thu-tuong.jpg"
    )  # from the description
    # The fixture spells this title decomposed (NFD) and with &nbsp;.
    assert "Giá xăng giảm".encode() not in (FEEDS / "vi_rss2.xml").read_bytes()
    assert second.title == "Giá xăng giảm từ 15h chiều nay"
    assert second.guid == "4812346"
    assert second.url == "https://vnexpress.net/kinh-doanh/gia-xang-giam-4812346.html"
    assert second.published == datetime(2026, 11, 27, 1, 30, tzinfo=UTC)  # "Thứ hai, 27/11/2026 08:30"
    assert second.author == "Lê Thị Thuỷ"
    assert second.image_url == "https://vnexpress.net/2026/11/27/xang.jpg"
    # No title: made from the summary. A date without zone is Saigon time, not UTC.
    assert third.title.startswith("Đội tuyển Việt Nam thắng Thái Lan 2-1")
    assert third.title.endswith("…")
    assert third.published == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


def test_atom10_xml_base() -> None:
    doc = parse("atom10.xml")
    assert doc.link == "https://tuoitre.vn/giao-duc.htm"
    first, second = doc.articles
    assert first.url == "https://tuoitre.vn/giao-duc/diem-chuan-2026.htm"
    assert 'href="https://tuoitre.vn/giao-duc/bo-gd-dt.htm"' in first.content_html
    assert first.image_url == "https://tuoitre.vn/anh/diem-chuan.jpg"
    assert first.title == "Điểm chuẩn đại học năm 2026 tăng nhẹ"
    assert first.author == "Trần Minh Khoa, Phạm Thu Hà"
    assert first.published == datetime(2026, 11, 27, 2, 15, tzinfo=UTC)
    assert first.updated == datetime(2026, 11, 27, 11, 45, 30, tzinfo=UTC)
    assert second.url == "https://tuoitre.vn/xa-hoi/hoc-sinh-nghi-tet.htm"
    assert 'href="https://tuoitre.vn/xa-hoi/lich-nghi.htm"' in second.content_html
    assert second.author == "Báo Tuổi Trẻ"  # the feed's author


def test_relative_urls_in_content_resolve_against_the_article_link() -> None:
    content = (
        b'<rss version="2.0"><channel><title>T</title>'
        b"<item><link>https://vnexpress.net/thoi-su/a.html</link>"
        b'<description>&lt;img src="anh/1.jpg"&gt;&lt;a href="/b.html"&gt;b&lt;/a&gt;</description></item>'
        b"<item><link>/c.html</link><description>&lt;a href='d.html'&gt;d&lt;/a&gt;</description></item>"
        b"<item><description>&lt;a href='e.html'&gt;e&lt;/a&gt;</description></item>"
        b"</channel></rss>"
    )
    first, second, third = parse_bytes(content, url="https://feeds.example.net/vne/rss.xml").articles
    assert first.content_html == (
        '<img src="https://vnexpress.net/thoi-su/anh/1.jpg">'
        '<a href="https://vnexpress.net/b.html" rel="noopener noreferrer">b</a>'
    )
    assert first.image_url == "https://vnexpress.net/thoi-su/anh/1.jpg"
    assert second.url == "https://feeds.example.net/c.html"
    assert second.content_html == '<a href="https://feeds.example.net/d.html" rel="noopener noreferrer">d</a>'
    assert (
        third.content_html == '<a href="https://feeds.example.net/vne/e.html" rel="noopener noreferrer">e</a>'
    )


def test_relative_guid_is_kept_as_given() -> None:
    doc = parse_bytes(
        b'<rss version="2.0"><channel><title>T</title><item><guid>12345</guid></item></channel></rss>'
    )
    assert doc.articles[0].guid == "12345"
    assert doc.articles[0].url is None  # not "https://example.vn/12345"
    doc = parse_bytes(
        b'<rss version="2.0"><channel><item><guid>https://example.vn/a</guid></item></channel></rss>'
    )
    assert doc.articles[0].url == "https://example.vn/a"


@pytest.mark.parametrize(
    ("name", "count"), [("rss090.xml", 2), ("rss10.xml", 1), ("atom03.xml", 1), ("rss091.xml", 1)]
)
def test_old_formats(name: str, count: int) -> None:
    doc = parse(name)
    assert len(doc.articles) == count
    assert all(article.url and article.title for article in doc.articles)


def test_rss091_doctype_removed_and_html_entities_kept() -> None:
    doc = parse("rss091.xml")
    assert doc.title == "Cần Thơ online"
    assert doc.articles[0].title == "Chợ nổi Cái Răng – điểm đến hấp dẫn"
    # A bare DOCTYPE (no internal subset, so no entity definitions) goes without a warning.
    assert doc.warnings == ()


def test_xss_is_removed_everywhere() -> None:
    doc = parse("xss.xml")
    text = all_text(doc).lower()
    needles = ["<script", "javascript", "vbscript", "onerror", "onload", "onmouseover", "data:"]
    needles += ["<iframe", "<svg", "<object", "<embed", "<style", "style=", "class=", "id="]
    for needle in needles:
        assert needle not in text, needle
    (article,) = doc.articles
    assert doc.link is None
    assert article.url is None
    assert article.title == "Bài viết có mã độc"
    assert article.image_url == "https://xss.example.vn/anh/that.jpg"
    assert article.content_html.count("<a ") == 7
    assert article.content_html.count("href=") == 1
    assert '<a href="https://vnexpress.net/an-toan.html" rel="noopener noreferrer">' in article.content_html


def test_billion_laughs_is_not_expanded() -> None:
    doc = parse("billion_laughs.xml")
    assert "removed the DOCTYPE declaration (its entities are never expanded)" in doc.warnings
    assert "lollol" not in all_text(doc)
    assert doc.articles[0].url == "https://example.vn/bai-1.html"


def test_quadratic_blowup_is_not_expanded() -> None:
    entity = "x" * 100_000
    content = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{entity}">]>'
        '<rss version="2.0"><channel><title>Nổ bộ nhớ</title><item><title>Bài</title>'
        f"<description>{'&a;' * 50_000}</description></item></channel></rss>"
    ).encode()
    doc = parse_bytes(content)
    assert doc.title == "Nổ bộ nhớ"
    assert "xxxxxxxxxx" not in all_text(doc)
    assert len(doc.articles[0].content_html) < 1_000_000  # expanded, it would be 5 GB


def test_prolog_ends_at_the_root_whatever_is_quoted_bracketed_or_commented() -> None:
    prolog = '<?xml version="1.0"?>\n<!-- c --><!DOCTYPE r [<!ENTITY a "]>"><!-- ]> --><!ENTITY b \'>\'>]>'
    assert _split_prolog(prolog + "<r/>") == (prolog, "<r/>", False)
    assert _split_prolog("<rss><!DOCTYPE x></rss>") == ("", "<rss><!DOCTYPE x></rss>", False)
    assert _split_prolog("<!DOCTYPE r [ <!ENTITY a 'x'>") == ("<!DOCTYPE r [ <!ENTITY a 'x'>", "", False)
    assert _split_prolog("x <!-- <r> --> < 1 <?pi <r>?><r>") == ("x <!-- <r> --> < 1 <?pi <r>?>", "<r>", True)


def test_huge_author_is_capped() -> None:
    long_name = "Nguyễn " * 200_000
    content = (
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>T</title>'
        f"<managingEditor>{long_name}</managingEditor>"
        f"<item><title>A</title><author>{long_name}</author></item>"
        f"<item><title>B</title><dc:creator><![CDATA[{long_name}]]></dc:creator></item>"
        f"<item><title>C</title><author>{'a@b.vn ' * 200_000}</author></item>"
        "</channel></rss>"
    ).encode()
    doc = parse_bytes(content)
    assert "truncated author fields longer than 1000 characters" in doc.warnings
    assert [len(a.author) <= 200 for a in doc.articles] == [True, True, True]
    assert doc.articles[0].author.startswith("Nguyễn Nguyễn")
    assert doc.articles[1].author.startswith("Nguyễn Nguyễn")


RLO, PDF, RLI, PDI = "\u202e", "\u202c", "\u2067", "\u2069"


def test_authors_are_plain_text_and_one_line_fields_have_no_bidi_controls() -> None:
    content = (
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Kênh</title>'
        "<item><title>Bản tin &lt;b&gt;đặc biệt&lt;/b&gt; " + RLO + "lmth.exe" + PDF + "</title>"
        "<link>https://p.example.vn/1.html</link>"
        "<dc:creator>&lt;script&gt;alert(1)&lt;/script&gt; Nguyễn Văn A</dc:creator>"
        "<description>&lt;a href='https://p.example.vn/x'&gt;"
        + RLI
        + "Xem"
        + PDI
        + "&lt;/a&gt;</description>"
        "</item>"
        "<item><title>Hai</title>"
        "<author>ba@p.example.vn (&lt;img src=x onerror=alert(1)&gt;Trần Thị B)</author></item>"
        "</channel></rss>"
    ).encode()
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>Kênh</title><id>urn:x</id>'
        "<entry><title>Ba</title><id>urn:3</id>"
        "<author><name>Lê &lt;i&gt;Văn&lt;/i&gt; C</name></author>"
        "<author><name>" + RLO + "Phạm D</name></author></entry></feed>"
    ).encode()
    json_feed = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Kênh",
            "items": [{"id": "4", "title": RLO + "Bốn", "authors": [{"name": "<b>Hoàng E</b>" + PDI}]}],
        }
    ).encode()

    first, second = parse_bytes(content).articles
    (third,) = parse_bytes(atom).articles
    (fourth,) = parse_bytes(json_feed).articles

    assert first.author == "Nguyễn Văn A"
    assert first.title == "Bản tin đặc biệt lmth.exe"
    assert RLI not in first.content_html
    assert PDI not in first.content_html
    assert ">Xem</a>" in first.content_html
    assert second.author == "Trần Thị B"
    assert third.author == "Lê Văn C, Phạm D"
    assert (fourth.title, fourth.author) == ("Bốn", "Hoàng E")


def test_cap_author_fields() -> None:
    capped, changed = _cap_author_fields("<author>" + "&amp;" * 300 + "</author><name>ok</name>", limit=12)
    assert (capped, changed) == ("<author>&amp;&amp;</author><name>ok</name>", True)
    capped, _ = _cap_author_fields("<dc:creator><![CDATA[<b>" + "x" * 50 + "]]></dc:creator>", limit=10)
    assert capped == "<dc:creator>&lt;b&gt;x</dc:creator>"  # the limit counts escaped characters
    assert _cap_author_fields("<author/><name>short</name>") == ("<author/><name>short</name>", False)
    capped, _ = _cap_author_fields("<author>" + "y" * 30, limit=5)
    assert capped == "<author>yyyyy"


def test_dates_only_feedparser_reads_come_from_feedparser() -> None:
    content = b'<rss version="2.0"><channel><item><pubDate>20261127</pubDate></item></channel></rss>'
    assert parse_bytes(content).articles[0].published == datetime(2026, 11, 27, tzinfo=UTC)


def test_author_field_with_comments_and_cdata_is_capped_as_a_whole() -> None:
    field = "<author>" + "<!-- c -->".join(["<![CDATA[" + "b" * 400 + "]]>"] * 5) + "</author>"
    capped, changed = _cap_author_fields(f"<item>{field}<title>x</title></item>")
    assert changed
    assert capped == "<item><author>" + "b" * 1000 + "</author><title>x</title></item>"


def test_cp1258_mislabelled_as_utf8() -> None:
    raw = (FEEDS / "cp1258_mislabelled.xml").read_bytes()
    assert b'encoding="utf-8"' in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    doc = parse("cp1258_mislabelled.xml")
    assert doc.warnings == ("declared charset utf-8 is wrong; decoded as windows-1258",)
    assert doc.title == "Báo Người Lao Động - Thời sự"
    (article,) = doc.articles
    assert article.title == "Thủ tướng: Phải hoàn thành đường cao tốc Bắc - Nam trước Tết"
    assert article.author == "Đặng Văn Quý"
    assert article.published == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def test_malformed_xml_is_parsed_as_far_as_it_goes() -> None:
    doc = parse("malformed.xml")
    assert [a.title for a in doc.articles] == ["Tăng lương tối thiểu vùng từ 1/7", "Bảo hiểm xã hội một lần"]
    assert len(doc.warnings) == 1
    assert doc.warnings[0].startswith("malformed XML, parsed as far as it goes")


def test_utf16_feed_with_bom() -> None:
    content = '<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>Hà Nội</title>'
    content += "</channel></rss>"
    doc = parse_bytes(content.encode("utf-16"))
    assert doc.title == "Hà Nội"
    assert doc.articles == ()


def test_empty_channel_is_a_document() -> None:
    doc = parse_bytes('<rss version="2.0"><channel><title>Trống</title></channel></rss>'.encode())
    assert doc == ParsedDocument(title="Trống", link=None, ttl=None, articles=(), warnings=())


@pytest.mark.parametrize("ttl", ["abc", "-5", "0", "99999999"])
def test_bad_ttl_is_ignored(ttl: str) -> None:
    doc = parse_bytes(
        f'<rss version="2.0"><channel><title>T</title><ttl>{ttl}</ttl></channel></rss>'.encode()
    )
    assert doc.ttl is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"   ",
        "<!DOCTYPE html><html><head><title>Trang chủ</title></head><body><p>Chào</p></body></html>".encode(),
        b"\x00\x01\x02 garbage \xff\xfe",
        b"hello world",
        b"[1, 2, 3]",
    ],
)
def test_not_a_feed(content: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_bytes(content, url="https://example.vn/trang-chu")
    assert info.value.url == "https://example.vn/trang-chu"


def test_ten_thousand_entries() -> None:
    items = "".join(
        f"<item><title>Bài số {i}</title><link>https://example.vn/{i}.html</link><guid>g{i}</guid>"
        f"<description>&lt;p&gt;Tóm tắt {i}&lt;/p&gt;</description>"
        "<pubDate>Fri, 27 Nov 2026 08:30:00 +0700</pubDate></item>"
        for i in range(10_000)
    )
    content = f'<rss version="2.0"><channel><title>Nhiều bài</title>{items}</channel></rss>'.encode()
    doc = parse_bytes(content)
    assert len(doc.articles) == 10_000
    assert doc.articles[9_999] == ArticleData(
        guid="g9999",
        url="https://example.vn/9999.html",
        title="Bài số 9999",
        summary="Tóm tắt 9999",
        content_html="<p>Tóm tắt 9999</p>",
        published=datetime(2026, 11, 27, 1, 30, tzinfo=UTC),
    )


def test_parse_feed_and_result_are_picklable() -> None:
    assert pickle.loads(pickle.dumps(parse_feed)) is parse_feed
    doc = parse("atom10.xml")
    assert pickle.loads(pickle.dumps(doc)) == doc


# ---------------------------------------------------------------- JSON Feed


def json_feed(**fields: object) -> bytes:
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": []} | fields
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"a":' + b"[" * 100 + b"]" * 100 + b"}", "version: expected a jsonfeed.org URL"),
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON"),
        (json_feed(version="https://example.com/v1"), "version: expected a jsonfeed.org URL"),
        (json_feed(version=1.1), "version: expected a jsonfeed.org URL"),
        (json_feed(items={"id": "1"}), "items: expected a list"),
        (json_feed(title=["T"]), "title: expected a string"),
        (json_feed(home_page_url=5), "home_page_url: expected a string"),
        (json_feed(authors="Ban biên tập"), "authors: expected a list"),
        (json_feed(authors=[{"name": 5}]), "authors[0].name: expected a string"),
    ],
)
def test_json_feed_errors(content: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message.replace("[", r"\[")):
        parse_bytes(content)


def test_json_feed_bad_items_are_skipped_with_warnings() -> None:
    items = [
        {"id": "1", "title": "Tốt", "date_published": "27/11/2026 08:30"},
        {"id": "2", "title": 2},
        {"id": "3", "url": ["x"]},
        {"id": True},
        {"id": "4", "authors": [{"name": "A"}, "B"]},
        {"id": "5", "author": "Không phải object"},
        {"id": "6", "title": "Ngày hỏng", "date_published": "hôm qua"},
    ]
    doc = parse_bytes(json_feed(items=items))
    assert [a.guid for a in doc.articles] == ["1", "6"]
    assert doc.articles[0].published == datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    assert doc.articles[1].published is None
    assert doc.warnings == (
        "items[1].title: expected a string; item skipped",
        "items[2].url: expected a string; item skipped",
        "items[3].id: expected a string; item skipped",
        "items[4].authors[1]: expected an object; item skipped",
        "items[5].author: expected an object; item skipped",
        "items[6].date_published: not a date: 'hôm qua'",
    )


def test_json_feed_sanitises_content() -> None:
    items = [
        {
            "id": "x",
            "content_html": '<p onclick="a()">Chào <a href="java&#x73;cript:x">b</a></p><script>c</script>',
        }
    ]
    doc = parse_bytes(json_feed(items=items))
    assert doc.articles[0].content_html == '<p>Chào <a rel="noopener noreferrer">b</a></p>'
    assert doc.articles[0].title == "Chào b"


def test_json_feed_with_bom_and_mislabelled_charset() -> None:
    content = b"\xef\xbb\xbf  " + json_feed(title="Sức khoẻ")
    assert (
        parse_feed(content, url="https://x.vn/f.json", declared_charset="iso-8859-1", tz=SAIGON).title
        == "Sức khoẻ"
    )


# ---------------------------------------------------------------- every input


HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    '<a href="java&#x73;cript:alert(1)">x</a>',
    '<a href="data:text/html,x">x</a>',
    "<iframe src=//evil.example>",
    '<a href="/tuong-doi">tương đối</a>',
    "Hà Nội",
    "&amp;",
    "]]>",
    "<![CDATA[",
]
hostile_html = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)), max_size=6).map("".join)


def escape_xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@settings(max_examples=100, deadline=None)
@given(hostile_html, hostile_html, st.sampled_from(["", "javascript:alert(1)", "/bai.html", "data:,x"]))
def test_feed_output_is_always_safe(body: str, title: str, link: str) -> None:
    content = (
        '<rss version="2.0"><channel><title>T</title><item>'
        f"<title>{escape_xml(title)}</title><link>{escape_xml(link)}</link>"
        f"<description>{escape_xml(body)}</description>"
        f'<enclosure url="{escape_xml(link)}" type="image/png"/></item></channel></rss>'
    )
    doc = parse_bytes(content.encode("utf-8", errors="surrogatepass"))
    for article in doc.articles:
        assert re.search(r"<[A-Za-z/]", article.title) is None
        assert article.url in (None, "https://example.vn/bai.html")
        assert article.image_url is None or urlsplit(article.image_url).scheme in {"http", "https"}
        if article.content_html.strip():
            for element in lxml.html.fromstring(f"<div>{article.content_html}</div>").iter():
                assert element.tag not in {"script", "iframe", "svg"}
                assert not any(str(name).startswith("on") for name in element.attrib)
                for name in ("href", "src"):
                    if name in element.attrib:
                        assert urlsplit(element.attrib[name]).scheme in {"http", "https", "mailto"}


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_document_or_parse_error(content: bytes) -> None:
    try:
        doc = parse_bytes(b'<rss version="2.0"><channel><title>T</title><item><title>' + content)
    except ParseError:
        return
    assert isinstance(doc, ParsedDocument)


def test_external_entities_are_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "bi-mat.txt"
    secret.write_text("mật khẩu của Văn phòng Đảng uỷ", encoding="utf-8")
    feed = f"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE rss [
  <!ENTITY xxe SYSTEM "{secret.as_uri()}">
  <!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;
]>
<rss version="2.0"><channel><title>Tin &xxe;</title><link>https://portal.example.vn/</link>
<item><title>Bài &xxe; viết</title><link>https://portal.example.vn/1.html</link>
<description>Nội dung &xxe;</description></item></channel></rss>""".encode()
    doc = parse_feed(feed, url="https://portal.example.vn/rss", declared_charset=None, tz=SAIGON)
    assert "mật khẩu" not in all_text(doc)
    assert doc.articles[0].url == "https://portal.example.vn/1.html"
    assert "removed the DOCTYPE declaration (its entities are never expanded)" in doc.warnings
