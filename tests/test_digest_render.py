"""Tests for ``syndication.digest.render``: the digest and confirmation e-mails, and personalising them.

The HTML is parsed with lxml and checked for the structure mail clients need (tables
with ``role="presentation"``, a 600px column, inline styles, a hidden preheader), for
what it says (Vietnamese dates, titles, links) and for what it must never contain
(markup or markers from a source, links that are not absolute http(s)). The plain-text
part of a small digest is pinned exactly.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from syndication.digest.render import (
    DISPLAY_NAME,
    PREFERENCES_URL,
    RENDERED_KEPT,
    UNSUBSCRIBE_URL,
    DigestRenderer,
    Rendered,
    _wrap,
    personalise,
    vietnamese_date,
    vietnamese_duration,
)
from syndication.errors import ConfigError
from syndication.types import Article, DigestContent, DigestSection, DigestSpec

TEMPLATES = Path(__file__).parent.parent / "templates"
ZONE = "Asia/Ho_Chi_Minh"

# 06:00 on Friday 27/11/2026 in Hà Nội is 23:00 on Thursday in UTC.
END = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
START = END - timedelta(days=1)
ARCHIVE = "https://dangbo.example.vn/ban-tin/daily/2026-11-27/"
PREFS = "https://dangbo.example.vn/tuy-chon/tok3n?a=1&b=2"
UNSUB = "https://dangbo.example.vn/huy/tok3n"

DAILY = DigestSpec(
    name="daily",
    schedule="0 6 * * *",
    subject="{site}: {digest} ngày {date} ({count} tin)",
    title="Bản tin hằng ngày",
)


@pytest.fixture(scope="module")
def renderer() -> DigestRenderer:
    return DigestRenderer(
        templates_dir=TEMPLATES,
        site_title="Cổng thông tin Đảng bộ Khối",
        site_url="https://dangbo.example.vn/",
        publisher="Đảng bộ Khối các cơ quan tỉnh",
        timezone=ZONE,
    )


def article(id: int, **changes: object) -> Article:
    made = Article(
        id=id,
        identity=f"url:https://tin.example.vn/bai-{id}.html",
        guid=None,
        url=f"https://tin.example.vn/bai-{id}.html",
        title=f"Tin số {id}",
        summary=f"Tóm tắt tin số {id}.",
        content_html="<p>NỘI DUNG ĐẦY ĐỦ KHÔNG ĐƯỢC GỬI</p>",
        author="",
        published=END - timedelta(hours=id),
        updated=END - timedelta(hours=id),
        first_seen=END - timedelta(hours=id),
        image_url=None,
        source_id="nguon",
        categories=("thoi-su",),
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def digest_of(*sections: tuple[str, str, list[Article]], spec: DigestSpec = DAILY) -> DigestContent:
    return DigestContent(
        digest=spec,
        sections=tuple(
            DigestSection(category=slug, title=title, articles=tuple(items))
            for slug, title, items in sections
        ),
        window_start=START,
        window_end=END,
    )


SAMPLE = digest_of(
    (
        "xay-dung-dang",
        "Xây dựng Đảng",
        [
            article(
                1,
                title="Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 12",
                summary="Sáng 26/11, Đảng uỷ Khối các cơ quan tỉnh tổ chức hội nghị sơ kết công tác "
                "xây dựng Đảng, đánh giá kết quả thực hiện nghị quyết và đề ra nhiệm vụ trọng tâm "
                "trong thời gian tới.",
                image_url="https://tin.example.vn/anh/1.jpg",
                published=datetime(2026, 11, 23, 2, 0, tzinfo=UTC),  # Monday
            ),
        ],
    ),
    (
        "thoi-su",
        "Thời sự",
        [
            article(
                2,
                title="Khai mạc Hội nghị thành phố Hà Nội",
                summary="",
                url=None,
                published=datetime(2026, 11, 22, 17, 30, tzinfo=UTC),  # Monday 00:30 in Hà Nội
            ),
        ],
    ),
)


def parse(document: str) -> lxml_html.HtmlElement:
    return lxml_html.document_fromstring(document)


def visible(element: lxml_html.HtmlElement) -> str:
    return " ".join(element.text_content().replace("\u2060", "").split())


def rendered_sample(renderer: DigestRenderer) -> tuple[Rendered, str, str]:
    rendered = renderer.render(SAMPLE, archive_url=ARCHIVE)
    html, text = personalise(
        rendered, display_name="Nguyễn Văn An", preferences_url=PREFS, unsubscribe_url=UNSUB
    )
    return rendered, html, text


# --- dates and subject -------------------------------------------------------------------


def test_vietnamese_weekdays_and_dates_in_the_site_time_zone() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(ZONE)
    monday = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    names = ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"]
    for offset, name in enumerate(names):
        day = monday + timedelta(days=offset)
        assert vietnamese_date(day, zone) == f"{name}, {23 + offset}/11/2026"
    # 17:30 UTC on Thursday is already Friday in Hà Nội (UTC+7).
    assert vietnamese_date(datetime(2026, 11, 26, 17, 30, tzinfo=UTC), zone) == "Thứ Sáu, 27/11/2026"
    assert vietnamese_date(datetime(2026, 1, 4, 12, 0, tzinfo=UTC), zone) == "Chủ Nhật, 04/01/2026"
    with pytest.raises(ValueError, match="naive"):
        vietnamese_date(datetime(2026, 11, 27), zone)


def test_subject_fills_site_digest_date_and_count(renderer: DigestRenderer) -> None:
    assert (
        renderer.subject(SAMPLE) == "Cổng thông tin Đảng bộ Khối: Bản tin hằng ngày ngày 27/11/2026 (2 tin)"
    )
    untitled = replace(SAMPLE, digest=replace(DAILY, title="", subject="{digest} {x} {0} {site.__class__}"))
    assert renderer.subject(untitled) == "daily {x} {0} {site.__class__}"
    multiline = replace(SAMPLE, digest=replace(DAILY, subject="{digest}\r\nBcc: x@example.com"))
    assert "\n" not in renderer.subject(multiline)
    assert renderer.render(SAMPLE, archive_url=ARCHIVE).subject == renderer.subject(SAMPLE)
    with pytest.raises(ValueError, match="naive"):
        renderer.subject(replace(SAMPLE, window_end=datetime(2026, 11, 27)))


# --- HTML structure ----------------------------------------------------------------------


def test_html_is_a_table_layout_in_vietnamese_utf8(renderer: DigestRenderer) -> None:
    _, html, _ = rendered_sample(renderer)
    root = parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert root.get("lang") == "vi"
    assert root.xpath("//head/meta[@charset='utf-8']")
    assert root.xpath("//head/meta[@name='viewport']")
    tables = root.xpath("//table")
    assert len(tables) >= 4
    assert all(table.get("role") == "presentation" for table in tables)
    assert all(table.get("cellpadding") == "0" and table.get("cellspacing") == "0" for table in tables)
    (container,) = root.xpath("//table[contains(@class, 'container')]")
    assert "max-width:600px" in container.get("style")
    assert container.get("align") == "center"
    # Outlook for Windows ignores max-width: a fixed 600px table in conditional comments.
    assert '<!--[if mso]><table role="presentation" width="600"' in html
    assert root.findtext(".//title") == renderer.subject(SAMPLE)


def test_html_says_what_the_digest_holds(renderer: DigestRenderer) -> None:
    _, html, _ = rendered_sample(renderer)
    root = parse(html)
    (preheader,) = root.xpath("//div[@class='preheader']")
    assert "display:none" in preheader.get("style")
    assert visible(preheader).startswith(
        "Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 12 · Khai mạc Hội nghị thành phố Hà Nội"
    )
    (browser,) = root.xpath("//a[@class='browser-link']")
    assert (visible(browser), browser.get("href")) == ("Xem trên trình duyệt", ARCHIVE)
    (site,) = root.xpath("//a[@class='site']")
    assert (visible(site), site.get("href")) == ("Cổng thông tin Đảng bộ Khối", "https://dangbo.example.vn/")
    assert root.xpath("string(//h1)") == "Bản tin hằng ngày"
    assert root.xpath("string(//p[@class='date'])") == "Thứ Sáu, 27/11/2026"
    assert visible(root.xpath("//p[@class='greeting']")[0]) == "Kính gửi Nguyễn Văn An,"
    assert [visible(h2) for h2 in root.xpath("//h2")] == ["Xây dựng Đảng", "Thời sự"]

    # One row per item: the text, and the thumbnail beside it when there is one.
    first, second = root.xpath("//tr[td[@class='item']]")
    (link,) = first.xpath(".//h3/a")
    assert (visible(link), link.get("href")) == (
        "Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 12",
        "https://tin.example.vn/bai-1.html",
    )
    assert visible(first.xpath(".//p[@class='meta']")[0]) == "Xây dựng Đảng · Thứ Hai, 23/11/2026"
    assert visible(first.xpath(".//p[@class='summary']")[0]).startswith("Sáng 26/11, Đảng uỷ Khối")
    (image,) = first.xpath(".//img")
    assert image.get("src") == "https://tin.example.vn/anh/1.jpg"
    assert image.get("width") == "120"
    # The linked title beside it already says what the picture is about.
    assert image.get("alt") == ""
    assert image.getparent().get("href") == "https://tin.example.vn/bai-1.html"

    # No URL: the title without a link; no summary, no image: neither element.
    assert second.xpath(".//h3/a") == []
    assert visible(second.xpath(".//h3")[0]) == "Khai mạc Hội nghị thành phố Hà Nội"
    assert visible(second.xpath(".//p[@class='meta']")[0]) == "Thời sự · Thứ Hai, 23/11/2026"
    assert second.xpath(".//p[@class='summary'] | .//img") == []
    assert second.xpath("td/@colspan") == ["2"]

    # Summaries only: the article body never reaches an e-mail.
    assert "NỘI DUNG ĐẦY ĐỦ" not in html


def test_html_footer_has_publisher_reason_and_personal_links(renderer: DigestRenderer) -> None:
    _, html, _ = rendered_sample(renderer)
    root = parse(html)
    (footer,) = root.xpath("//td[@class='footer']")
    assert footer.xpath("string(.//p[@class='publisher'])") == "Đảng bộ Khối các cơ quan tỉnh"
    assert visible(footer.xpath(".//p[@class='why']")[0]) == (
        "Bạn nhận bản tin này vì địa chỉ của bạn đã đăng ký nhận Bản tin hằng ngày "
        "từ Cổng thông tin Đảng bộ Khối."
    )
    links = [(visible(a), a.get("href")) for a in footer.xpath(".//a")]
    assert links == [("Thay đổi lựa chọn", PREFS), ("Huỷ đăng ký", UNSUB)]
    assert 'href="https://dangbo.example.vn/tuy-chon/tok3n?a=1&amp;b=2"' in html


def test_css_is_inlined_so_no_style_element_is_needed(renderer: DigestRenderer) -> None:
    rendered, html, _ = rendered_sample(renderer)
    root = parse(html)

    def style(xpath: str) -> str:
        return str(root.xpath(xpath)[0].get("style"))

    assert "background-color:#f2f3f5" in style("//body")
    assert "max-width:600px" in style("//table[contains(@class, 'container')]")
    assert "background-color:#b3261e" in style("//td[@class='header']")
    assert "border-bottom:2px solid #b3261e" in style("//h2")
    assert "color:#1a4d8f" in style("//a[@class='item-link']")
    assert "font-family:Arial, sans-serif" in style("//td[@class='card']")
    # Items inherit their font from their cell, not from the table around it.
    assert "font-family:Arial, sans-serif" in style("//td[@class='item']")
    assert "display:block" in style("//img")
    assert "mso-hide:all" in style("//div[@class='preheader']")
    # Every element the stylesheet names carries its style itself.
    classed = root.xpath("//body//*[@class] | //body")
    assert classed
    assert [e.get("class") for e in classed if not e.get("style")] == []
    # What is left of <style> is only the @media refinement for small screens.
    for element in root.xpath("//style"):
        assert element.text.lstrip().startswith("@media")
        assert ".item-link" not in element.text
    # Inlined once, when rendering: personalising only joins strings.
    assert rendered.html.count("style=") == html.count("style=")


def test_same_content_renders_to_the_same_bytes(renderer: DigestRenderer) -> None:
    again = DigestContent(digest=DAILY, sections=SAMPLE.sections, window_start=START, window_end=END)
    assert renderer.render(SAMPLE, archive_url=ARCHIVE) == renderer.render(again, archive_url=ARCHIVE)


def test_renderings_are_kept_for_the_same_content(renderer: DigestRenderer) -> None:
    first = renderer.render(SAMPLE, archive_url=ARCHIVE)
    again = DigestContent(digest=DAILY, sections=SAMPLE.sections, window_start=START, window_end=END)
    assert renderer.render(again, archive_url=ARCHIVE) is first
    assert renderer.render(SAMPLE, archive_url=ARCHIVE + "khac/") is not first
    # Only the latest are kept.
    for hours in range(RENDERED_KEPT):
        renderer.render(replace(SAMPLE, window_end=END + timedelta(hours=hours + 1)), archive_url=ARCHIVE)
    later = renderer.render(SAMPLE, archive_url=ARCHIVE)
    assert later == first
    assert later is not first


def test_empty_digest_renders_a_notice_and_the_footer(renderer: DigestRenderer) -> None:
    rendered = renderer.render(digest_of(), archive_url=ARCHIVE)
    html, text = personalise(rendered, display_name="", preferences_url=PREFS, unsubscribe_url=UNSUB)
    root = parse(html)
    assert root.xpath("//h2 | //h3 | //img") == []
    assert root.xpath("string(//p[@class='intro'])") == "Không có tin mới trong kỳ này."
    assert visible(root.xpath("//div[@class='preheader']")[0]).startswith("Không có tin mới trong kỳ này.")
    assert visible(root.xpath("//p[@class='greeting']")[0]) == "Kính gửi quý bạn đọc,"
    assert [a.get("href") for a in root.xpath("//td[@class='footer']//a")] == [PREFS, UNSUB]
    assert "Không có tin mới trong kỳ này." in text
    assert rendered.subject.endswith("(0 tin)")


# --- nothing unsafe ----------------------------------------------------------------------

NASTY_TITLE = '<script>alert("tiêu đề")</script> Tin "nóng" & <b>mới</b>'
NASTY_SUMMARY = "<img src=x onerror=alert(1)> Tóm tắt </p></td></tr></table><script>x()</script>"


def test_markup_in_titles_and_summaries_is_text(renderer: DigestRenderer) -> None:
    nasty = digest_of(
        ("thoi-su", "Thời sự <i>", [article(1, title=NASTY_TITLE, summary=NASTY_SUMMARY)]),
    )
    html, text = personalise(
        renderer.render(nasty, archive_url=ARCHIVE),
        display_name="An",
        preferences_url=PREFS,
        unsubscribe_url=UNSUB,
    )
    root = parse(html)
    assert root.xpath("//script | //b | //i | //img[@onerror] | //*[@onerror]") == []
    assert visible(root.xpath("//h3")[0]) == NASTY_TITLE
    assert visible(root.xpath("//p[@class='summary']")[0]) == " ".join(NASTY_SUMMARY.split())
    assert visible(root.xpath("//h2")[0]) == "Thời sự <i>"
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    # The text part is text/plain: it says the same thing, unescaped.
    assert NASTY_TITLE in text


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "/bai-viet/1.html",
        "//evil.example/1.html",
        "https://",
        "https://tin.example.vn/có dấu cách.html",
        "https://tin.example.vn/\r\nBcc: x",
        "ftp://tin.example.vn/1.html",
        "https://[::1",
    ],
)
def test_only_absolute_http_links(renderer: DigestRenderer, url: str) -> None:
    bad = digest_of(("thoi-su", "Thời sự", [article(1, url=url, image_url=url)]))
    rendered = renderer.render(bad, archive_url=ARCHIVE)
    html, text = personalise(rendered, display_name="An", preferences_url=PREFS, unsubscribe_url=UNSUB)
    root = parse(html)
    assert root.xpath("//h3/a | //img") == []
    hrefs = [a.get("href") for a in root.xpath("//a")]
    assert hrefs == [ARCHIVE, "https://dangbo.example.vn/", PREFS, UNSUB]
    assert f"\n{url.strip()}\n" not in text


def test_images_only_over_https(renderer: DigestRenderer) -> None:
    plain_http = digest_of(("thoi-su", "Thời sự", [article(1, image_url="http://tin.example.vn/1.jpg")]))
    root = parse(renderer.render(plain_http, archive_url=ARCHIVE).html)
    assert root.xpath("//img") == []
    # An http article link is fine (many provincial portals have no TLS).
    http_link = digest_of(("thoi-su", "Thời sự", [article(1, url="http://tin.example.vn/1.html")]))
    root = parse(renderer.render(http_link, archive_url=ARCHIVE).html)
    assert root.xpath("//h3/a/@href") == ["http://tin.example.vn/1.html"]


def test_every_link_is_absolute_http(renderer: DigestRenderer) -> None:
    _, html, _ = rendered_sample(renderer)
    root = parse(html)
    for href in root.xpath("//@href | //@src"):
        assert re.match(r"https?://[^/\s]+", href), href


def test_text_that_looks_like_a_marker_stays_text(renderer: DigestRenderer) -> None:
    lookalike = f"Giảm 50%% {UNSUBSCRIBE_URL} {DISPLAY_NAME} %%%PREFERENCES_URL%%%"
    tricky = digest_of(
        (
            "thoi-su",
            f"Chuyên mục {DISPLAY_NAME}",
            [
                article(
                    1,
                    title=lookalike,
                    summary=f"{PREFERENCES_URL}{UNSUBSCRIBE_URL}",
                    url=f"https://tin.example.vn/{UNSUBSCRIBE_URL}?q=%%",
                    image_url=f"https://tin.example.vn/{DISPLAY_NAME}.jpg",
                )
            ],
        ),
        spec=replace(DAILY, title=f"Bản tin {PREFERENCES_URL}"),
    )
    site_renderer = DigestRenderer(
        templates_dir=TEMPLATES,
        site_title=f"Cổng {UNSUBSCRIBE_URL}",
        site_url="https://dangbo.example.vn/",
        publisher=f"Đảng bộ {DISPLAY_NAME}",
        timezone=ZONE,
    )
    for used in (renderer, site_renderer):
        rendered = used.render(tricky, archive_url=ARCHIVE)
        html, text = personalise(
            rendered, display_name="NGƯỜI-NHẬN", preferences_url=PREFS, unsubscribe_url=UNSUB
        )
        # The personal values appear exactly where the templates put them, nowhere else.
        assert text.count("NGƯỜI-NHẬN") == 1
        assert text.count(PREFS) == 1
        assert text.count(UNSUB) == 1
        assert html.count("NGƯỜI-NHẬN") == 1
        assert html.count(PREFS.replace("&", "&amp;")) == 1
        assert html.count(UNSUB) == 1
        root = parse(html)
        # People still read what the source wrote (a word joiner breaks each "%%").
        assert visible(root.xpath("//h3")[0]) == lookalike
        assert root.xpath("//h3/a/@href") == ["https://tin.example.vn/%25%UNSUBSCRIBE_URL%25%?q=%25%"]
        assert "%%" not in "".join(root.xpath("//@href | //@src"))


def test_personalise_escapes_the_name_for_html_only(renderer: DigestRenderer) -> None:
    rendered = renderer.render(SAMPLE, archive_url=ARCHIVE)
    name = 'Nguyễn "Hoà" <b>'
    html, text = personalise(rendered, display_name=name, preferences_url=PREFS, unsubscribe_url=UNSUB)
    assert "Kính gửi Nguyễn &quot;Hoà&quot; &lt;b&gt;," in html
    root = parse(html)
    assert root.xpath("//b") == []
    assert visible(root.xpath("//p[@class='greeting']")[0]) == f"Kính gửi {name},"
    assert f"Kính gửi {name}," in text
    assert renderer.personalise(
        rendered, display_name=name, preferences_url=PREFS, unsubscribe_url=UNSUB
    ) == (html, text)
    # A name is one line, whatever the directory held.
    html, text = personalise(
        rendered,
        display_name="Chi bộ\r\nBcc: x@example.com\u200b",
        preferences_url=PREFS,
        unsubscribe_url=UNSUB,
    )
    assert "Kính gửi Chi bộ Bcc: x@example.com," in text
    # Markers in a name are not read again.
    html, text = personalise(
        rendered, display_name=UNSUBSCRIBE_URL, preferences_url=PREFS, unsubscribe_url=UNSUB
    )
    assert f"Kính gửi {UNSUBSCRIBE_URL}," in text
    assert text.count(UNSUB) == 1


def test_personalise_refuses_links_that_are_not_http(renderer: DigestRenderer) -> None:
    rendered = renderer.render(SAMPLE, archive_url=ARCHIVE)
    for bad in ("javascript:alert(1)", "/relative", "https://x.example/a b", "https://x.example/\n"):
        with pytest.raises(ValueError, match="preferences_url"):
            personalise(rendered, display_name="", preferences_url=bad, unsubscribe_url=UNSUB)
        with pytest.raises(ValueError, match="unsubscribe_url"):
            personalise(rendered, display_name="", preferences_url=PREFS, unsubscribe_url=bad)
    with pytest.raises(ValueError, match="archive_url"):
        renderer.render(SAMPLE, archive_url="javascript:alert(1)")


# --- Vietnamese text ---------------------------------------------------------------------


def test_vietnamese_text_arrives_nfc_and_intact(renderer: DigestRenderer) -> None:
    decomposed = unicodedata.normalize("NFD", "Uỷ ban nhân dân tỉnh Quảng Ngãi họp báo")
    content = digest_of(("thoi-su", "Thời sự", [article(1, title=decomposed, summary=decomposed)]))
    html, text = personalise(
        renderer.render(content, archive_url=ARCHIVE),
        display_name=unicodedata.normalize("NFD", "Trần Thị Hoà"),
        preferences_url=PREFS,
        unsubscribe_url=UNSUB,
    )
    for part in (html, text):
        assert unicodedata.is_normalized("NFC", part)
        assert "Uỷ ban nhân dân tỉnh Quảng Ngãi họp báo" in part
        assert "Trần Thị Hoà" in part
    assert "Huỷ đăng ký" in html
    assert "Huỷ đăng ký" in text


# --- plain text --------------------------------------------------------------------------

EXPECTED_TEXT = """\
Cổng thông tin Đảng bộ Khối
Bản tin hằng ngày
Thứ Sáu, 27/11/2026

Kính gửi Nguyễn Văn An,

Bản tin kỳ này gồm 2 tin mới.

Xem trên trình duyệt:
https://dangbo.example.vn/ban-tin/daily/2026-11-27/


XÂY DỰNG ĐẢNG
=============

Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 12
Xây dựng Đảng · Thứ Hai, 23/11/2026
Sáng 26/11, Đảng uỷ Khối các cơ quan tỉnh tổ chức hội nghị sơ kết công tác
xây dựng Đảng, đánh giá kết quả thực hiện nghị quyết và đề ra nhiệm vụ trọng
tâm trong thời gian tới.
https://tin.example.vn/bai-1.html


THỜI SỰ
=======

Khai mạc Hội nghị thành phố Hà Nội
Thời sự · Thứ Hai, 23/11/2026


--\x20
Đảng bộ Khối các cơ quan tỉnh
Bạn nhận bản tin này vì địa chỉ của bạn đã đăng ký nhận Bản tin hằng ngày từ
Cổng thông tin Đảng bộ Khối.

Thay đổi lựa chọn:
https://dangbo.example.vn/tuy-chon/tok3n?a=1&b=2

Huỷ đăng ký:
https://dangbo.example.vn/huy/tok3n
"""


def test_text_part_of_a_small_digest(renderer: DigestRenderer) -> None:
    _, _, text = rendered_sample(renderer)
    assert text == EXPECTED_TEXT


def test_text_part_has_every_title_and_url_and_wraps_without_breaking_urls(renderer: DigestRenderer) -> None:
    long_url = "https://tin.example.vn/" + "-".join(["bai-viet-rat-dai"] * 8) + ".html"
    articles = [
        article(
            i,
            title=f"Tiêu đề số {i}: " + "Đảng bộ Khối tổ chức hội nghị quán triệt nghị quyết " * 2,
            summary="Nội dung tóm tắt bằng tiếng Việt có dấu, " * 12,
            url=long_url if i == 3 else f"https://tin.example.vn/bai-{i}.html",
        )
        for i in range(1, 6)
    ]
    content = digest_of(("thoi-su", "Thời sự", articles[:3]), ("van-hoa", "Văn hoá", articles[3:]))
    rendered = renderer.render(content, archive_url=ARCHIVE)
    _, text = personalise(rendered, display_name="An", preferences_url=PREFS, unsubscribe_url=UNSUB)
    flat = " ".join(text.split())
    for item in articles:
        assert " ".join(item.title.split()) in flat
        assert f"\n{item.url}\n" in text
    assert "THỜI SỰ" in text
    assert "VĂN HOÁ" in text
    assert f"\n{PREFS}\n" in text
    assert f"\n{UNSUB}\n" in text
    for line in text.splitlines():
        assert len(line) <= 76 or " " not in line.strip(), line


# --- confirmation ------------------------------------------------------------------------


def test_confirmation_email(renderer: DigestRenderer) -> None:
    confirm = "https://dangbo.example.vn/xac-nhan/t0k?x=1&y=2"
    rendered = renderer.render_confirmation(
        display_name='Lê "Văn" <script>', confirm_url=confirm, digest_title="Bản tin hằng ngày"
    )
    assert rendered.subject == "Xác nhận đăng ký nhận bản tin – Cổng thông tin Đảng bộ Khối"
    root = parse(rendered.html)
    assert root.get("lang") == "vi"
    assert root.xpath("//script") == []
    # A name given: the party register; escaped like any text.
    assert visible(root.xpath("//p[@class='greeting']")[0]) == 'Kính gửi đồng chí Lê "Văn" <script>,'
    assert root.xpath("//a[@class='confirm-link']/@href") == [confirm]
    assert "background-color:#b3261e" in root.xpath("//td[@class='confirm-button']/@style")[0]
    assert "Bản tin hằng ngày" in visible(root)
    # The link opens a page; only its button confirms (mail scanners open every link).
    assert "bấm nút “Xác nhận đăng ký” trên trang đó" in visible(root)
    assert "bấm nút “Xác nhận đăng ký” trên trang đó" in " ".join(rendered.text.split())
    assert f"\n{confirm}\n" in rendered.text
    assert 'Kính gửi đồng chí Lê "Văn" <script>,' in rendered.text
    assert "hiệu lực" not in rendered.text  # no validity given, none said
    assert "Bản tin hằng ngày" in rendered.text
    # Nothing to personalise: the same strings come back.
    assert personalise(rendered, display_name="x", preferences_url=PREFS, unsubscribe_url=UNSUB) == (
        rendered.html,
        rendered.text,
    )
    with pytest.raises(ValueError, match="confirm_url"):
        renderer.render_confirmation(display_name="", confirm_url="javascript:x", digest_title="")


def test_confirmation_without_a_name(renderer: DigestRenderer) -> None:
    rendered = renderer.render_confirmation(
        display_name="  ", confirm_url="https://dangbo.example.vn/x", digest_title="Bản tin tuần"
    )
    assert "Kính gửi quý bạn đọc," in rendered.text
    assert "đồng chí" not in rendered.text
    assert visible(parse(rendered.html).xpath("//p[@class='greeting']")[0]) == "Kính gửi quý bạn đọc,"


def test_confirmation_says_how_long_the_link_works(renderer: DigestRenderer) -> None:
    rendered = renderer.render_confirmation(
        display_name="Nguyễn Văn An",
        confirm_url="https://dangbo.example.vn/xac-nhan/t0k",
        digest_title="Bản tin tuần",
        valid_for=timedelta(days=7),
    )
    said = "Liên kết xác nhận có hiệu lực trong 7 ngày."
    assert said in " ".join(rendered.text.split())
    assert said in visible(parse(rendered.html))
    assert "\nhttps://dangbo.example.vn/xac-nhan/t0k\n\nLiên kết" in rendered.text


@pytest.mark.parametrize(
    ("span", "said"),
    [
        (timedelta(days=7), "7 ngày"),
        (timedelta(hours=36), "36 giờ"),
        (timedelta(hours=48), "2 ngày"),
        (timedelta(minutes=90), "90 phút"),
        (timedelta(seconds=20), "1 phút"),
    ],
)
def test_vietnamese_duration(span: timedelta, said: str) -> None:
    assert vietnamese_duration(span) == said


# --- construction ------------------------------------------------------------------------


def test_missing_or_broken_templates_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing"):
        DigestRenderer(
            templates_dir=tmp_path,
            site_title="x",
            site_url="https://x.example/",
            publisher="x",
            timezone=ZONE,
        )
    (tmp_path / "email").mkdir()
    for name in ("digest.txt", "confirm.html", "confirm.txt", "styles.css"):
        (tmp_path / "email" / name).write_text("ok", encoding="utf-8")
    (tmp_path / "email" / "digest.html").write_text("{% if %}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"digest\.html:1"):
        DigestRenderer(
            templates_dir=tmp_path,
            site_title="x",
            site_url="https://x.example/",
            publisher="x",
            timezone=ZONE,
        )


def test_site_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="site_url"):
        DigestRenderer(
            templates_dir=TEMPLATES,
            site_title="x",
            site_url="dangbo.example.vn",
            publisher="x",
            timezone=ZONE,
        )


# --- every input ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    title=st.text(
        alphabet=st.sampled_from("ab <>&\"'%/:;=\nĐđệ\u0301\u200b\x00\x85DISPLAY_NAME"), max_size=60
    ),
    summary=st.text(max_size=120),
)
def test_no_source_text_becomes_markup_or_a_marker(
    renderer: DigestRenderer, title: str, summary: str
) -> None:
    content = digest_of(("thoi-su", "Thời sự", [article(1, title=title, summary=summary)]))
    rendered = renderer.render(content, archive_url=ARCHIVE)
    html, text = personalise(rendered, display_name="ZZNAME", preferences_url=PREFS, unsubscribe_url=UNSUB)
    assert text.count("ZZNAME") == html.count("ZZNAME") == 1
    assert text.count(UNSUB) == html.count(UNSUB) == 1
    root = parse(html)
    assert root.xpath("//body//script | //body//b | //h3/*[not(self::a)]") == []
    assert len(root.xpath("//h3")) == 1


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.text(alphabet=st.sampled_from("aệĐ-/:.%"), min_size=1, max_size=90),
        max_size=40,
    )
)
def test_wrapping_is_textwrap_without_breaking_words(words: list[str]) -> None:
    """On one-line text (what ``clean_line`` gives) the fast wrap is ``textwrap``'s."""
    text = " ".join(words)
    expected = textwrap.fill(text, 76, break_long_words=False, break_on_hyphens=False)
    assert _wrap(text) == expected
