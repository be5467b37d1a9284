"""Normalisation of HTML, URLs, dates and charsets from sources."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syndication.ingest.normalize import (
    MAX_DEPTH,
    absolute_url,
    decode_document,
    html_to_text,
    limit_markup,
    nfc_markup,
    parse_date,
    sanitize_html,
    text_to_html,
    truncate_html,
)
from tests.vietnamese import encode_cp1258

SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")
BASE = "https://vnexpress.net/thoi-su/bai-viet.html"


# ---------------------------------------------------------------- sanitize_html


def test_sanitize_keeps_article_markup_with_absolute_links() -> None:
    html = (
        '<div class="main" id="x" style="color:red"><h2>Thời sự</h2>'
        '<p>Xin chào <a href="/the-gioi?id=1#binh-luan" title="Thế giới">Hà Nội</a></p>'
        '<figure><img src="anh/1.jpg" alt="Ảnh" width="600" height="400" onerror="alert(1)">'
        "<figcaption>Chú thích</figcaption></figure>"
        '<table><tr><td colspan="2" rowspan="1">ô</td></tr></table>'
        '<p><a href="mailto:toasoan@vnexpress.net">Thư</a></p></div>'
    )
    assert sanitize_html(html, base_url=BASE) == (
        "<div><h2>Thời sự</h2>"
        '<p>Xin chào <a href="https://vnexpress.net/the-gioi?id=1#binh-luan" title="Thế giới"'
        ' rel="noopener noreferrer">Hà Nội</a></p>'
        '<figure><img src="https://vnexpress.net/thoi-su/anh/1.jpg" alt="Ảnh" width="600" height="400">'
        "<figcaption>Chú thích</figcaption></figure>"
        '<table><tbody><tr><td colspan="2" rowspan="1">ô</td></tr></tbody></table>'
        '<p><a href="mailto:toasoan@vnexpress.net" rel="noopener noreferrer">Thư</a></p></div>'
    )


@pytest.mark.parametrize(
    "attack",
    [
        '<a href="javascript:alert(1)">x</a>',
        '<a href="java&#x73;cript:alert(1)">x</a>',
        '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
        '<a href="jav&#x09;ascript:alert(1)">x</a>',
        '<a href="jav\nascript:alert(1)">x</a>',
        '<a href=" &#1;javascript:alert(1)">x</a>',
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<a href="vbscript:msgbox(1)">x</a>',
        '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
        '<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">x',
        '<img src="javascript:alert(1)">x',
        '<a href="file:///etc/passwd">x</a>',
    ],
)
def test_sanitize_drops_dangerous_urls(attack: str) -> None:
    out = sanitize_html(attack, base_url=BASE)
    assert "href" not in out
    assert "src" not in out
    assert "x" in out


def test_sanitize_removes_active_content() -> None:
    html = (
        "<p>trước</p><script>alert(1)</script><style>p{}</style>"
        '<iframe src="https://evil.example/"></iframe><svg onload="alert(1)"><circle/></svg>'
        '<object data="x.swf"></object><embed src="x.swf"><noscript>ns</noscript>'
        "<template><p>t</p></template><math><mi>m</mi></math><!-- bình luận -->"
        '<p onclick="alert(1)" onmouseover="alert(2)">sau</p>'
    )
    assert sanitize_html(html, base_url=BASE) == "<p>trước</p><p>sau</p>"


def test_sanitize_without_base_drops_relative_links() -> None:
    out = sanitize_html('<a href="/x">a</a><img src="https://cdn.vn/a.jpg">', base_url=None)
    assert out == '<a rel="noopener noreferrer">a</a><img src="https://cdn.vn/a.jpg">'


def test_sanitize_output_is_nfc_and_markup_survives_u0338() -> None:
    decomposed = unicodedata.normalize("NFD", "<p>Thủ tướng</p>")
    assert sanitize_html(decomposed, base_url=None) == "<p>Thủ tướng</p>"
    out = sanitize_html('<a href="https://x.vn/">&#x338; onmouseover=alert(1) </a>', base_url=None)
    assert out == '<a href="https://x.vn/" rel="noopener noreferrer">\u0338 onmouseover=alert(1) </a>'
    assert len(lxml.html.fromstring(out).attrib) == 2


FRAGMENTS = [
    "<script>alert(1)</script>",
    "<script",
    "<iframe src=//evil.example>",
    "<svg onload=alert(1)>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">',
    '<a href="java&#x73;cript:alert(1)">',
    '<a href="java&#115;cript&colon;alert(1)">',
    "<a href=data:text/html,x>",
    "<img src='data:image/png;base64,AA'>",
    '<a href="vbscript:x">',
    "<a href=' \x01javascript:alert(1)'>",
    "<body onload=alert(1)>",
    "<style>",
    "<math><mtext><script>alert(1)</script>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<template><script>alert(1)</script></template>",
    "<object data=x>",
    "<p>",
    "</p>",
    "<a href='/rel'>",
    '<img src="anh.jpg">',
    "<!--",
    "-->",
    "<![CDATA[",
    "&#x338;",
    ">",
    "\u0338",
    '"',
    "'",
    "Hà Nội",
    '<div style="background:url(javascript:alert(1))" class=c id=i>',
    "<form action=javascript:alert(1)><button formaction=javascript:alert(1)>",
]
html_soup = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=10)), max_size=12).map("".join)
SAFE_SCHEMES = {"http", "https", "mailto"}
FORBIDDEN_TAGS = {
    "script",
    "style",
    "iframe",
    "svg",
    "math",
    "object",
    "embed",
    "template",
    "noscript",
    "form",
}


@settings(max_examples=300)
@given(html_soup, st.sampled_from([BASE, None]))
def test_sanitize_output_is_always_safe(html: str, base_url: str | None) -> None:
    out = sanitize_html(html, base_url=base_url)
    lowered = out.lower()
    assert "<script" not in lowered
    assert "<iframe" not in lowered
    assert "<svg" not in lowered
    assert sanitize_html(out, base_url=base_url) == out
    if not out.strip():
        return
    for element in lxml.html.fromstring(f"<div>{out}</div>").iter():
        assert element.tag not in FORBIDDEN_TAGS
        for name, value in element.attrib.items():
            assert not str(name).startswith("on")
            assert name not in {"style", "class", "id", "action", "formaction"}
            if name in {"href", "src"}:
                assert urlsplit(value).scheme in SAFE_SCHEMES, value
                assert "javascript:" not in value.lower()
                assert "data:" not in value.lower()


# ---------------------------------------------------------------- nesting and size caps

_TAGS = re.compile(r"<(/?)([a-z][a-z0-9]*)[^>]*?(/?)>")
_VOID = {"br", "img", "hr"}


def depth(markup: str) -> int:
    """The deepest nesting of well-formed (sanitised) markup."""
    level = deepest = 0
    for end, name, _ in _TAGS.findall(markup):
        if name in _VOID:
            continue
        level += -1 if end else 1
        deepest = max(deepest, level)
    return deepest


def nested(levels: int, inner: str = "sâu", tag: str = "div") -> str:
    return f"<{tag}>" * levels + inner + f"</{tag}>" * levels


def test_deep_nesting_is_capped_before_sanitising() -> None:
    # 60,000 nested <div> took nh3 35 s; capped, they cost what their size costs.
    bomb = sanitize_html(nested(60_000), base_url=BASE)
    assert depth(bomb) <= MAX_DEPTH
    assert len(bomb) < 10_000
    assert "<" not in html_to_text(nested(60_000) + "<p>Tin mới</p>")
    # Below libxml2's own limit (256) the text at the bottom survives, unwrapped.
    kept = sanitize_html("<p>Mở đầu</p>" + nested(200, "<b>sâu</b><script>x()</script>"), base_url=BASE)
    assert depth(kept) <= MAX_DEPTH
    assert "sâu" in kept
    assert "x()" not in kept
    assert kept.startswith("<p>Mở đầu</p>")
    assert "sâu" in html_to_text(nested(200))


def test_markup_within_the_caps_is_not_touched() -> None:
    # Deep for an article (100 levels), long (more tags than MAX_DEPTH): left as it is.
    article = nested(100, "".join(f"<p>Đoạn {n} <a href='/x/{n}'>liên kết</a></p>" for n in range(300)))
    assert limit_markup(article) is article
    assert sanitize_html(article, base_url=BASE).count("<p>") == 300
    short = "<div>" * 50
    assert limit_markup(short) is short


def test_too_many_elements_keep_only_their_text() -> None:
    markup = "<p>" + "<b>x</b>" * 150_000 + "<script>alert(1)</script></p>"
    text = limit_markup(markup)
    assert text == "x" * 150_000
    assert sanitize_html(markup, base_url=BASE) == "x" * 150_000


ARTICLE = sanitize_html(
    "".join(
        f'<p>Đảng &amp; Nhà nước, đoạn {n}: <a href="/tin/{n}.html">liên kết</a> <b>đậm</b></p>'
        for n in range(3000)
    ),
    base_url=BASE,
)


def test_truncate_html_cuts_at_a_safe_boundary() -> None:
    assert truncate_html(ARTICLE, 10_000_000) is ARTICLE
    cut = truncate_html(ARTICLE, 50_000)
    assert 40_000 < len(cut.encode("utf-8")) <= 50_000
    assert sanitize_html(cut, base_url=None) == cut  # well-formed: nothing left open
    assert cut.endswith("</p>") or cut.endswith("</a>") or cut.endswith("</b>")
    assert ARTICLE.startswith(cut.rsplit("<p>", 1)[0])


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=len(ARTICLE.encode("utf-8")) + 10))
def test_truncate_html_never_exceeds_its_limit(limit: int) -> None:
    cut = truncate_html(ARTICLE, limit)
    assert len(cut.encode("utf-8")) <= limit
    assert sanitize_html(cut, base_url=None) == cut
    assert not re.search(r"&[^;]*$", cut)


# ---------------------------------------------------------------- text and URLs


def test_html_to_text() -> None:
    html = "<p>Đoạn một</p><p>Đoạn <b>h</b>ai &amp; &lt;ba&gt;</p><script>x()</script><br>cuối&nbsp;cùng"
    assert html_to_text(html) == "Đoạn một Đoạn hai & <ba> cuối cùng"
    assert html_to_text(unicodedata.normalize("NFD", "<p>Thủ tướng</p>")) == "Thủ tướng"
    long_text = html_to_text("<p>" + "Sài Gòn " * 100 + "</p>", limit=30)
    assert len(long_text) <= 30
    assert long_text.endswith("…")


def test_text_to_html() -> None:
    assert text_to_html("Dòng 1\nDòng <2>\n\nĐoạn 2") == "<p>Dòng 1<br>Dòng &lt;2&gt;</p><p>Đoạn 2</p>"


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/tin-tuc/a.html", BASE, "https://vnexpress.net/tin-tuc/a.html"),
        ("b.html", BASE, "https://vnexpress.net/thoi-su/b.html"),
        ("//cdn.vn/a.jpg", BASE, "https://cdn.vn/a.jpg"),
        ("  https://x.vn/a b  ", None, "https://x.vn/a%20b"),
        ("javascript:alert(1)", BASE, None),
        ("mailto:a@b.vn", BASE, None),
        ("/a", None, None),
        ("http://[::1", None, None),
        ("http:///nohost", None, None),
        (None, BASE, None),
        ("", BASE, None),
    ],
)
def test_absolute_url(url: str | None, base: str | None, expected: str | None) -> None:
    assert absolute_url(url, base_url=base) == expected


# ---------------------------------------------------------------- dates

NOV_27_0830_SAIGON = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
NOV_27_MIDNIGHT_SAIGON = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thứ hai, 27/11/2026 08:30", NOV_27_0830_SAIGON),
        ("Thứ Hai, 27/11/2026, 08:30 (GMT+7)", NOV_27_0830_SAIGON),
        ("27/11/2026", NOV_27_MIDNIGHT_SAIGON),
        ("27-11-2026 08:30:00", NOV_27_0830_SAIGON),
        ("08:30 27/11/2026", NOV_27_0830_SAIGON),
        ("Cập nhật: 27/11/2026 - 08:30", NOV_27_0830_SAIGON),
        ("ngày 27 tháng 11 năm 2026", NOV_27_MIDNIGHT_SAIGON),
        ("Ngày 27/11/2026", NOV_27_MIDNIGHT_SAIGON),
        ("27/11/2026 8h30", NOV_27_0830_SAIGON),
        ("27/11/2026 08:30 GMT+0700", NOV_27_0830_SAIGON),
        ("27/11/2026 08:30 GMT", datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
        ("27/11/2026 08:30 PM", datetime(2026, 11, 27, 13, 30, tzinfo=UTC)),
        ("3/4/2026", datetime(2026, 4, 2, 17, 0, tzinfo=UTC)),
        ("2026/11/27 08:30", NOV_27_0830_SAIGON),
        ("Fri, 27 Nov 2026 08:30:00 +0700", NOV_27_0830_SAIGON),
        ("Fri, 27 Nov 2026 08:30:00 GMT", datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
        ("Fri, 27 Nov 2026 08:30:00 -0000", datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
        ("Fri, 27 Nov 2026 08:30:00", NOV_27_0830_SAIGON),
        ("2026-11-27T08:30:00Z", datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
        ("2026-11-27T08:30:00+07:00", NOV_27_0830_SAIGON),
        ("2026-11-27T08:30:00", NOV_27_0830_SAIGON),
        ("2026-11-27", NOV_27_MIDNIGHT_SAIGON),
    ],
)
def test_parse_date(text: str, expected: datetime) -> None:
    parsed = parse_date(text, tz=SAIGON)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "hôm qua",
        "31/02/2026",
        "27/13/2026",
        "27/11/2026 25:61",
        "99/99/9999",
        "9999-12-31T23:59:59-05:00",
    ],
)
def test_parse_date_rejects_non_dates(text: str | None) -> None:
    assert parse_date(text, tz=SAIGON) is None


@given(st.text(max_size=60))
def test_parse_date_never_raises(text: str) -> None:
    parsed = parse_date(text, tz=SAIGON)
    assert parsed is None or parsed.tzinfo is UTC


# ---------------------------------------------------------------- charsets

DOC = (
    '<?xml version="1.0" encoding="utf-8"?><rss><title>Thủ tướng Nguyễn Xuân Phúc, Đà Nẵng hoà</title></rss>'
)


def test_decode_utf8() -> None:
    assert decode_document(DOC.encode(), declared="utf-8") == (DOC, None)
    assert decode_document(DOC.encode(), declared=None) == (DOC, None)


def test_decode_cp1258_labelled_utf8() -> None:
    content = encode_cp1258(DOC)
    assert b"\xcc" in content  # the grave accent of "hoà" as a combining mark
    assert decode_document(content, declared="utf-8") == (
        DOC,
        "declared charset utf-8 is wrong; decoded as windows-1258",
    )
    assert decode_document(content, declared=None)[0] == DOC


def test_decode_cp1258_declared_in_document() -> None:
    doc = DOC.replace("utf-8", "windows-1258")
    assert decode_document(encode_cp1258(doc), declared=None) == (doc, None)
    assert decode_document(encode_cp1258(doc), declared="UTF-8") == (
        doc,
        "declared charset utf-8 is wrong; decoded as windows-1258",
    )


def test_decode_html_meta_charset() -> None:
    page = '<html><head><meta charset="windows-1258"></head><body>Hoà Bình</body></html>'
    assert decode_document(encode_cp1258(page), declared=None) == (page, None)


def test_decode_western_labels_lose_to_utf8_and_vietnamese() -> None:
    assert decode_document(DOC.encode(), declared="iso-8859-1") == (
        DOC,
        "declared charset iso-8859-1 is wrong; decoded as utf-8",
    )
    assert decode_document(encode_cp1258(DOC), declared="windows-1252") == (
        DOC,
        "declared charset windows-1252 is wrong; decoded as windows-1258",
    )
    italian = "<p>Così però è città</p>"
    assert decode_document(italian.encode("cp1252"), declared="windows-1252") == (italian, None)


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_decode_bom_wins(codec: str) -> None:
    content = DOC.encode(codec)
    if codec == "utf-16-be":
        content = b"\xfe\xff" + content
    assert decode_document(content, declared="windows-1258") == (DOC, None)


def test_decode_unknown_label() -> None:
    assert decode_document(DOC.encode(), declared="x-bogus") == (
        DOC,
        "unknown charset x-bogus; decoded as utf-8",
    )


def test_decode_undeclared_non_utf8_warns() -> None:
    text, warning = decode_document(encode_cp1258("<p>Hoà Bình</p>"), declared=None)
    assert text == "<p>Hoà Bình</p>"
    assert warning == "no charset declared; decoded as windows-1258"


def test_decode_result_is_nfc_without_breaking_markup() -> None:
    text, _ = decode_document("<b>\u0338x</b> Thu\u0309 \x01".encode(), declared=None)
    assert text == "<b>\u0338x</b> Thủ "
    assert nfc_markup("a>\u0338 Hoa\u0300") == "a>\u0338 Hoà"


@given(st.binary(max_size=200), st.sampled_from([None, "utf-8", "windows-1258", "iso-8859-1", "nope"]))
def test_decode_never_raises(content: bytes, declared: str | None) -> None:
    text, warning = decode_document(content, declared=declared)
    assert isinstance(text, str)
    known = ("declared", "unknown", "no charset", "decoded as", "converted text from", "text looks like")
    assert warning is None or all(part.startswith(known) for part in warning.split("; "))
