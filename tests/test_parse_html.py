"""Portal pages without a feed: article links from a listing page, articles from their pages.

Golden files: each fixture page under ``tests/data/portal/`` has its expected fields beside it
(``<page>.expected.json``); the body is checked for its paragraphs in order and for the
boilerplate that must never reach it.
"""

from __future__ import annotations

import json
import pickle
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname
from zoneinfo import ZoneInfo

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from syndication.errors import ParseError
from syndication.ingest.normalize import html_to_text
from syndication.ingest.parse_html import (
    END_MARKERS,
    REMOVE_SELECTORS,
    extract_links,
    parse_article_page,
    selector_problem,
)
from syndication.types import ArticleData, HtmlRules
from tests.vietnamese import encode_cp1258

SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")
DATA = Path(__file__).parent / "data" / "portal"
SAMPLE = Path(__file__).parent.parent / "config" / "sample"
SITE = "https://dangbokhoi.example.vn"
LISTING_URL = f"{SITE}/xay-dung-dang.html"

# Each fixture page is served at /<its file name> (tests/test_core.py and test_cli.py serve them so).
HOI_NGHI = f"{SITE}/hoi-nghi-quan-triet.html"
UY_BAN = f"{SITE}/uy-ban-kiem-tra-giam-sat.html"
CHI_BO = f"{SITE}/chi-bo-sinh-hoat-chuyen-de.html"
UNSAFE = f"{SITE}/trang-co-ma-doc.html"
PAGES = {
    "hoi-nghi-quan-triet": HOI_NGHI,
    "uy-ban-kiem-tra-giam-sat": UY_BAN,
    "chi-bo-sinh-hoat-chuyen-de": CHI_BO,
    "trang-co-ma-doc": UNSAFE,
}

OTHER_NEWS_TITLES = (
    "Chi bộ Văn phòng sinh hoạt chuyên đề tháng 11",
    "Trao Huy hiệu Đảng đợt 7/11 cho 35 đảng viên",
    "Kết nạp đảng viên mới trong đoàn viên thanh niên",
    "Tập huấn nghiệp vụ công tác kiểm tra, giám sát",
    "Sơ kết chuyển đổi số trong công tác đảng",
    "Phần mềm quản lý đảng viên đã được triển khai",
)
BOILERPLATE = (
    "Các tin khác",
    "Tin khác",
    "Tin liên quan",
    "Xem các tin đã đưa ngày",
    "Trang chủ",
    "Giới thiệu",
    "Tin tức - Sự kiện",
    "Học tập và làm theo Bác",
    "Liên kết website",
    "Thông báo",
    "In bài viết",
    "Chia sẻ",
    "Gửi email",
    "Ý kiến bạn đọc",
    "Cơ quan chủ quản",
    "Số 01 đường Hùng Vương",
    "Kết quả kiểm tra tổ chức đảng quý III",
    "Tin đọc nhiều",
    "Lịch công tác tuần 48",
)

# The explicit rules a source would configure for the fixture portal.
PORTAL_RULES = HtmlRules(
    links=".featured h2 a, .list-news h3 a",
    title="h1.title",
    lead=".sapo",
    body=".news-detail",
    author=".content p[style*=right]",
    date=".news-detail .date",
    image=".content img",
)


def page_bytes(name: str) -> bytes:
    return (DATA / f"{name}.html").read_bytes()


def parse(name: str, rules: HtmlRules | None = None, *, charset: str | None = None) -> ArticleData:
    return parse_article_page(
        page_bytes(name), url=PAGES[name], declared_charset=charset, rules=rules or HtmlRules(), tz=SAIGON
    )


def expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.expected.json").read_text(encoding="utf-8"))
    return data


def body_text(article: ArticleData) -> str:
    return html_to_text(article.content_html, limit=100_000)


def body_images(article: ArticleData) -> list[str]:
    if not article.content_html:
        return []
    return [
        str(src)
        for src in lxml.html.fragment_fromstring(article.content_html, create_parent="div").xpath(
            "//img/@src"
        )
    ]


def assert_matches_golden(article: ArticleData, golden: dict[str, Any]) -> None:
    fields = {
        "url": article.url,
        "title": article.title,
        "summary": article.summary,
        "author": article.author,
        "published": article.published.isoformat() if article.published else None,
        "updated": article.updated.isoformat() if article.updated else None,
        "image_url": article.image_url,
        "tags": list(article.tags),
    }
    assert fields == {key: golden[key] for key in fields}
    assert article.guid is None
    text = body_text(article)
    positions = [text.find(paragraph) for paragraph in golden["body_paragraphs"]]
    assert -1 not in positions, text
    assert positions == sorted(positions)
    assert body_images(article) == golden["body_images"]


def assert_clean_body(article: ArticleData) -> None:
    """No boilerplate, no other-news titles, and the title, lead and author line only once."""
    text = body_text(article)
    for phrase in (*BOILERPLATE, *OTHER_NEWS_TITLES):
        assert phrase not in text, phrase
    assert article.title not in text
    if article.summary:
        assert article.summary not in text
    if article.author:
        assert article.author not in text


# --- Articles: the built-in defaults ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PAGES))
def test_article_page_matches_golden_with_default_rules(name: str) -> None:
    article = parse(name)

    assert_matches_golden(article, expected(name))
    assert_clean_body(article)


def test_article_date_is_the_portal_date_line_in_utc() -> None:
    article = parse("hoi-nghi-quan-triet")

    # "Thứ hai, 27/11/2026 08:30" in Asia/Ho_Chi_Minh (UTC+7).
    assert article.published is not None
    assert article.published.isoformat() == "2026-11-27T01:30:00+00:00"
    assert article.published.utcoffset() is not None
    assert article.published.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_article_text_fields_are_nfc_and_keep_tone_placement() -> None:
    article = parse("uy-ban-kiem-tra-giam-sat")

    for value in (article.title, article.summary, article.author, article.content_html):
        assert unicodedata.is_normalized("NFC", value)
    # The portal writes "Uỷ", "hoà": kept as written, not rewritten to "Ủy", "hòa".
    assert article.title.startswith("Uỷ ban Kiểm tra")
    assert "hoà giải" in article.title
    assert "Uỷ ban Mặt trận Tổ quốc" in body_text(article)
    assert "Ủy" not in body_text(article)


def test_canonical_link_on_another_site_is_not_trusted() -> None:
    # The page names an aggregator on www.example.org as canonical: the page's own URL wins.
    assert parse("uy-ban-kiem-tra-giam-sat").url == UY_BAN


def test_lazy_image_is_read_from_data_src() -> None:
    article = parse("uy-ban-kiem-tra-giam-sat")

    assert "placeholder" not in article.content_html
    assert body_images(article) == [f"{SITE}/Uploads/images/2026/11/26/giam-sat-chuyen-de.jpg"]


def test_windows_1258_fixture_is_what_the_codec_writes() -> None:
    raw = page_bytes("chi-bo-sinh-hoat-chuyen-de")

    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = unicodedata.normalize("NFC", raw.decode("cp1258"))
    assert 'charset=utf-8"' in text  # the page lies about its charset
    assert encode_cp1258(text) == raw  # regenerate it so after editing the decoded text


@pytest.mark.parametrize("charset", [None, "utf-8"])
def test_windows_1258_page_labelled_utf8_decodes(charset: str | None) -> None:
    article = parse("chi-bo-sinh-hoat-chuyen-de", charset=charset)

    assert_matches_golden(article, expected("chi-bo-sinh-hoat-chuyen-de"))
    text = body_text(article)
    assert "Hoàng Đức Thắng" in text
    assert "\ufffd" not in text
    assert all(unicodedata.is_normalized("NFC", v) for v in (article.title, article.summary, text))


# --- Articles: explicit rules ----------------------------------------------------------------


def test_article_page_with_explicit_rules_matches_golden() -> None:
    article = parse("hoi-nghi-quan-triet", PORTAL_RULES)

    assert_matches_golden(article, expected("hoi-nghi-quan-triet"))
    assert_clean_body(article)


def test_body_container_loses_metadata_end_blocks_and_built_in_removals() -> None:
    # Only the body is configured; the container holds the title, date, print/share tools,
    # sapo, author line, "Các tin khác" and the date picker.
    article = parse("hoi-nghi-quan-triet", HtmlRules(body=".news-detail"))

    assert_matches_golden(article, expected("hoi-nghi-quan-triet"))
    assert_clean_body(article)
    assert "27/11/2026 08:30" not in body_text(article)
    assert "<select" not in article.content_html


def test_rules_remove_drops_more() -> None:
    rules = replace(PORTAL_RULES, remove=(".content table",))

    article = parse("hoi-nghi-quan-triet", rules)

    assert body_images(article) == []
    assert "Quang cảnh hội nghị" not in body_text(article)
    assert "Sau hội nghị, mỗi cán bộ" in body_text(article)


def test_selectors_matching_nothing_fall_back_to_the_defaults() -> None:
    missing = ".no-such-element"
    rules = HtmlRules(title=missing, lead=missing, author=missing, date=missing, image=missing, body=missing)

    article = parse("hoi-nghi-quan-triet", rules)

    assert_matches_golden(article, expected("hoi-nghi-quan-triet"))
    assert_clean_body(article)


def test_meta_selectors_read_their_content() -> None:
    rules = HtmlRules(title="meta[property='og:title']", lead="meta[name=description]")

    article = parse("hoi-nghi-quan-triet", rules)

    assert article.title == expected("hoi-nghi-quan-triet")["title"]  # site name suffix stripped
    assert article.summary == expected("hoi-nghi-quan-triet")["summary"]


# --- Sanitising ------------------------------------------------------------------------------

DANGEROUS = (
    "<script",
    "alert(",
    "onerror",
    "onclick",
    "onload",
    "javascript:",
    "<iframe",
    "<object",
    "data:",
)


def test_scripts_handlers_and_javascript_links_are_stripped() -> None:
    article = parse("trang-co-ma-doc")

    lowered = article.content_html.lower()
    for needle in DANGEROUS:
        assert needle not in lowered, needle
    assert f'href="{SITE}/van-ban/ke-hoach-dan-van-kheo-2027-10460.html"' in article.content_html


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                "<script>alert(1)</script>",
                '<img src="x.jpg" onerror="alert(1)">',
                '<a href="javascript:alert(1)">x</a>',
                '<iframe src="https://evil.example.org/"></iframe>',
                '<p style="background:url(javascript:alert(1))">Đoạn văn có kiểu.</p>',
                '<a href="data:text/html,<script>alert(1)</script>">tải</a>',
                "<p>Nội dung bình thường của bài viết về hội nghị.</p>",
                '<svg onload="alert(1)"><circle r="1"/></svg>',
                "<object data='x.swf'></object>",
            ]
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_no_active_content_survives(snippets: list[str], with_body_rule: bool) -> None:
    page = (
        "<html><head><title>Tiêu đề bài viết thử nghiệm an toàn</title></head><body>"
        "<div class='content'><p>Đoạn mở đầu đủ dài để trình trích xuất coi đây là nội dung chính.</p>"
        + "".join(snippets)
        + "</div></body></html>"
    )
    rules = HtmlRules(body=".content") if with_body_rule else HtmlRules()

    article = parse_article_page(page.encode(), url=UNSAFE, declared_charset="utf-8", rules=rules, tz=SAIGON)

    lowered = article.content_html.lower()
    for needle in DANGEROUS:
        assert needle not in lowered


# --- End markers and removal rules -----------------------------------------------------------


def page_with(body: str, title: str = "Tiêu đề bài viết về công tác xây dựng Đảng") -> bytes:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>".encode()


LONG = "Nội dung chính của bài viết gồm nhiều câu dài để trình trích xuất nhận ra đây là phần thân bài. "


def test_flat_end_marker_drops_everything_after_it_in_the_container() -> None:
    body = (
        "<h1>Tiêu đề bài viết về công tác xây dựng Đảng</h1><div class='noidung'>"
        f"<p>{LONG * 3}</p><p>{LONG * 2}Đoạn cuối.</p>"
        "<p><strong>CÁC TIN KHÁC:</strong></p>"
        f"<p><a href='/tin/1-10001.html'>Hội nghị tổng kết năm</a></p><p>{LONG}Tóm tắt tin khác.</p>"
        "</div>"
    )
    for rules in (HtmlRules(), HtmlRules(body=".noidung")):
        article = parse_article_page(
            page_with(body), url=HOI_NGHI, declared_charset=None, rules=rules, tz=SAIGON
        )

        text = body_text(article)
        assert "Đoạn cuối." in text
        assert "CÁC TIN KHÁC" not in text
        assert "Hội nghị tổng kết năm" not in text
        assert "Tóm tắt tin khác" not in text


def test_end_marker_before_the_title_is_ignored() -> None:
    body = (
        "<div class='top'><span>Tin liên quan</span></div>"
        "<div class='main'><h1>Tiêu đề bài viết về công tác xây dựng Đảng</h1>"
        f"<div class='noidung'><p>{LONG * 3}Đoạn giữa.</p><p>{LONG}Đoạn cuối.</p></div></div>"
    )

    article = parse_article_page(
        page_with(body), url=HOI_NGHI, declared_charset=None, rules=HtmlRules(), tz=SAIGON
    )

    assert "Đoạn giữa." in body_text(article)
    assert "Đoạn cuối." in body_text(article)


def test_marker_words_inside_a_sentence_are_content() -> None:
    body = (
        "<h1>Tiêu đề bài viết về công tác xây dựng Đảng</h1><div class='noidung'>"
        f"<p>{LONG * 2}</p><p>Các tin khác nhau được kiểm chứng trước khi đăng tải. {LONG}</p>"
        f"<p>{LONG}Đoạn cuối.</p></div>"
    )

    article = parse_article_page(
        page_with(body), url=HOI_NGHI, declared_charset=None, rules=HtmlRules(body=".noidung"), tz=SAIGON
    )

    assert "Các tin khác nhau được kiểm chứng" in body_text(article)
    assert "Đoạn cuối." in body_text(article)


def test_built_in_rules_are_data() -> None:
    assert "Các tin khác" in END_MARKERS
    assert "Xem các tin đã đưa ngày" in END_MARKERS
    assert {"nav", "header", "footer", "aside", "form", ".related", ".other-news"} <= set(REMOVE_SELECTORS)
    assert all(selector_problem(selector) is None for selector in REMOVE_SELECTORS)


def test_page_wide_form_wrapper_is_not_removed() -> None:
    # ASP.NET portals wrap the whole page in one <form>; the fixture does too.
    article = parse("hoi-nghi-quan-triet", HtmlRules(body=".content"))

    assert "Sau hội nghị, mỗi cán bộ" in body_text(article)


# --- Errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"   ", b"<html><head></head><body></body></html>", b"<html><body><div> </div></body></html>"],
)
def test_page_without_title_or_body_is_a_parse_error(content: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_article_page(content, url=HOI_NGHI, declared_charset=None, rules=HtmlRules(), tz=SAIGON)

    assert caught.value.url == HOI_NGHI


def test_invalid_selector_is_a_parse_error() -> None:
    assert selector_problem("div[") is not None
    assert selector_problem(".content p[style*=right]") is None
    with pytest.raises(ParseError, match="div\\["):
        parse_article_page(
            page_bytes("hoi-nghi-quan-triet"),
            url=HOI_NGHI,
            declared_charset=None,
            rules=HtmlRules(body="div["),
            tz=SAIGON,
        )
    with pytest.raises(ParseError):
        extract_links(b"<html></html>", url=LISTING_URL, declared_charset=None, rules=HtmlRules(links="a[["))


def test_parsing_runs_in_a_worker_process() -> None:
    # The functions and what they return cross a process boundary by pickling.
    assert pickle.loads(pickle.dumps(parse_article_page)) is parse_article_page
    assert pickle.loads(pickle.dumps(extract_links)) is extract_links
    article = parse("hoi-nghi-quan-triet")
    assert pickle.loads(pickle.dumps(article)) == article


# --- Listing pages ---------------------------------------------------------------------------

ELSEWHERE = "https://www.example.org/bai-viet/hoc-tap-nghi-quyet-o-cac-dia-phuong-99001.html"
LISTING_LINKS = (HOI_NGHI, UY_BAN, CHI_BO, UNSAFE)


def links(
    rules: HtmlRules | None = None, *, content: bytes | None = None, url: str = LISTING_URL
) -> tuple[str, ...]:
    content = (DATA / "xay-dung-dang.html").read_bytes() if content is None else content
    return extract_links(content, url=url, declared_charset=None, rules=rules or HtmlRules())


def test_listing_links_default_are_exactly_the_articles_in_order() -> None:
    # Not the menu, sub-categories, breadcrumb, paging, "Xem tiếp" fragment, PDF notices,
    # external links or javascript: links; the thumbnail and headline links count once;
    # the fragment and the utm_ tracking parameters are dropped.
    assert links() == LISTING_LINKS


def test_listing_links_with_explicit_rule() -> None:
    # A configured selector is trusted: it may lead off the site.
    assert links(PORTAL_RULES) == (*LISTING_LINKS, ELSEWHERE)


def test_listing_links_rule_selecting_containers() -> None:
    assert links(HtmlRules(links=".list-news h3")) == (*LISTING_LINKS[1:], ELSEWHERE)


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_listing_links_capped_at_max_articles(limit: int) -> None:
    assert links(HtmlRules(max_articles=limit)) == LISTING_LINKS[:limit]
    assert links(replace(PORTAL_RULES, max_articles=limit)) == LISTING_LINKS[:limit]


def test_listing_links_html5_items_and_menu_class_wrapper() -> None:
    content = """
        <html><body><div class="layout-menu-left">
          <header><nav>
            <a href="/tin-tuc.html">Tin tức</a>
            <a href="/lich-su-dang-bo-tinh-qua-cac-thoi-ky.html">Lịch sử Đảng bộ tỉnh qua các thời kỳ</a>
          </nav></header>
          <main>
            <article><header><h2>
              <a href="/bai/mot-bai-viet">Một bài viết mới về công tác dân vận ở cơ sở</a>
            </h2></header></article>
            <article>
              <a href="?id=12345#top">Ảnh</a>
              <h2><a href="?id=12345">Bài viết thứ hai trên trang</a></h2>
            </article>
            <a href="/danh-muc/van-hoa">Văn hoá</a> <a href="/trang-2">Trang sau</a>
            <a href="https://dangbokhoi.example.vn/tin-tuc.html">Tin tức tổng hợp của Đảng bộ Khối</a>
          </main>
        </div></body></html>
    """

    assert links(content=content.encode(), url=f"{SITE}/tin-tuc.html") == (
        f"{SITE}/bai/mot-bai-viet",
        f"{SITE}/tin-tuc.html?id=12345",
    )


def test_listing_base_href_is_honoured() -> None:
    content = """
        <html><head><base href="https://dangbokhoi.example.vn/tin/"></head><body><ul><li><h3>
          <a href="hoi-nghi-10001.html">Hội nghị tổng kết công tác năm của Đảng bộ</a>
        </h3></li></ul></body></html>
    """

    assert links(content=content.encode()) == (f"{SITE}/tin/hoi-nghi-10001.html",)


def test_listing_links_of_a_file_url_stay_in_its_directory_tree(tmp_path: Path) -> None:
    (tmp_path / "tin").mkdir()
    listing = tmp_path / "tin" / "listing.html"
    listing.write_text(
        "<html><body><ul>"
        "<li><h3><a href='bai-viet-so-mot-10001.html'>Bài viết số một của cổng thông tin</a></h3></li>"
        "<li><h3><a href='con/bai-viet-so-hai-10002.html#x'>Bài viết số hai của cổng thông tin</a></h3></li>"
        "<li><h3><a href='../ngoai-thu-muc-10003.html'>Bài viết nằm ngoài thư mục của trang</a></h3></li>"
        "<li><h3><a href='file:///etc/passwd-10004.html'>Tệp của hệ thống không được đọc</a></h3></li>"
        "</ul></body></html>",
        encoding="utf-8",
    )
    url = listing.as_uri()

    found = links(content=listing.read_bytes(), url=url)

    assert found == (
        (tmp_path / "tin" / "bai-viet-so-mot-10001.html").as_uri(),
        (tmp_path / "tin" / "con" / "bai-viet-so-hai-10002.html").as_uri(),
    )


@pytest.mark.parametrize("rules", [HtmlRules(), HtmlRules(links="ul a")], ids=["default", "selector"])
def test_listing_links_of_a_file_url_never_leave_its_folder_in_any_encoding(
    tmp_path: Path, rules: HtmlRules
) -> None:
    (tmp_path / "tin").mkdir()
    listing = tmp_path / "tin" / "listing.html"
    up = "%2e%2e/" * 20
    hrefs = [
        "bai-viet-so-mot-10001.html",
        "%2e%2e/%2e%2e/ngoai-thu-muc-10002.html",
        "%2E%2E%2F%2E%2E%2Fngoai-thu-muc-10003.html",
        "%252e%252e/%252e%252e/ngoai-thu-muc-10004.html",
        "con/%2e%2e/%2e%2e/ngoai-thu-muc-10005.html",
        f"{up}proc/self/environ-10006",
        "file:///proc/self/environ-10007",
        f"{up}etc/passwd-10008",
        "bai-viet-%00-10009.html",
    ]
    listing.write_text(
        "<html><body><ul>"
        + "".join(
            f"<li><h3><a href='{h}'>Bài viết số {i} của cổng thông tin</a></h3></li>"
            for i, h in enumerate(hrefs)
        )
        + "</ul></body></html>",
        encoding="utf-8",
    )

    found = links(rules, content=listing.read_bytes(), url=listing.as_uri())

    assert found == ((tmp_path / "tin" / "bai-viet-so-mot-10001.html").as_uri(),)


# --- The bundled offline sample (config/sample) ----------------------------------------------


def test_sample_portal_reads_offline_through_file_urls() -> None:
    listing = SAMPLE / "portal" / "listing.html"

    found = extract_links(
        listing.read_bytes(), url=listing.as_uri(), declared_charset=None, rules=HtmlRules()
    )

    assert [Path(url2pathname(urlsplit(u).path)).name for u in found] == [
        "lien-hoan-van-nghe-quan-chung-chao-mung-ngay-hoi-dai-doan-ket-20311.html",
        "trao-giai-cuoc-thi-viet-ve-guong-nguoi-tot-viec-tot-nam-2026-20308.html",
        "khanh-thanh-nha-van-hoa-thon-dong-tam-tu-nguon-xa-hoi-hoa-20305.html",
    ]
    for link in found:
        path = Path(url2pathname(urlsplit(link).path))
        article = parse_article_page(
            path.read_bytes(), url=link, declared_charset=None, rules=HtmlRules(), tz=SAIGON
        )

        assert article.url == f"https://portal.example.vn/van-hoa-xa-hoi/{path.name}"  # its canonical link
        assert article.title
        assert article.summary
        assert article.author
        assert article.published is not None
        assert (article.published.year, article.published.month) == (2026, 11)
        assert article.image_url is not None
        assert article.image_url.startswith("https://portal.example.vn/Uploads/images/2026/11/")
        assert body_images(article) == [article.image_url]
        assert_clean_body(article)


@pytest.mark.parametrize(("name", "count"), [("tin-tuc-su-kien.rss", 9), ("xay-dung-dang.atom", 5)])
def test_sample_feeds_are_well_formed(name: str, count: int) -> None:
    root = etree.parse(str(SAMPLE / name), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    atom = "{http://www.w3.org/2005/Atom}"

    items = root.findall("channel/item") if root.tag == "rss" else root.findall(f"{atom}entry")

    assert len(items) == count
    for item in items:
        content = item.findtext("{http://purl.org/rss/1.0/modules/content/}encoded") or item.findtext(
            f"{atom}content"
        )
        assert content is not None
        assert "<img" in content
        assert "2026" in (item.findtext("pubDate") or item.findtext(f"{atom}published") or "")


@pytest.mark.parametrize("rules", [HtmlRules(), HtmlRules(body=".noidung")])
def test_related_box_before_the_text_takes_only_itself(rules: HtmlRules) -> None:
    body = (
        "<h1>Tiêu đề bài viết về công tác xây dựng Đảng</h1>"
        "<div class='box'><h3>Tin liên quan</h3>"
        "<ul><li><a href='/tin/1-10001.html'>Hội nghị tổng kết</a></li></ul></div>"
        f"<div class='noidung'><p>{LONG * 3}Đoạn giữa.</p><p>{LONG}Đoạn cuối.</p></div>"
    )

    article = parse_article_page(page_with(body), url=HOI_NGHI, declared_charset=None, rules=rules, tz=SAIGON)

    text = body_text(article)
    assert "Đoạn giữa." in text
    assert "Đoạn cuối." in text
    assert "Hội nghị tổng kết" not in text


def test_date_line_without_a_known_class_follows_the_title() -> None:
    body = (
        "<h1>Tiêu đề bài viết về công tác xây dựng Đảng</h1><div class='dong-thoi-gian'>Cập nhật lúc 08h30"
        f", 27/11/2026</div><div class='noidung'><p>{LONG * 3}</p>"
        "<p style='text-align:right'><strong>Lê Chung (Văn phòng Đảng uỷ Khối)</strong></p></div>"
    )

    article = parse_article_page(
        page_with(body), url=HOI_NGHI, declared_charset=None, rules=HtmlRules(), tz=SAIGON
    )

    assert article.published is not None
    assert article.published.isoformat() == "2026-11-27T01:30:00+00:00"
    assert article.author == "Lê Chung"
    assert "Cập nhật" not in body_text(article)
    assert "Lê Chung" not in body_text(article)


def test_listing_links_skip_sidebars_and_keep_wordpress_ids() -> None:
    content = """
        <html><body>
          <div class="posts">
            <h2><a href="/?p=4521">Chi đoàn tổ chức hoạt động tình nguyện mùa đông</a></h2>
            <h2><a href="/?paged=2">Các bài viết cũ hơn của chuyên mục này</a></h2>
          </div>
          <aside><h3><a href="/?p=4400">Bài đọc nhiều nhất trong tháng của cổng thông tin</a></h3></aside>
          <div class="right-sidebar"><a href="/tin-moi/tong-ket-10002.html">Hội nghị tổng kết</a></div>
        </body></html>
    """

    assert links(content=content.encode(), url=f"{SITE}/") == (f"{SITE}/?p=4521",)


def test_xhtml_declaration_and_title_element_only() -> None:
    content = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head>'
        "<title>Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 15 | Đảng bộ Khối các cơ quan tỉnh</title>"
        '<meta property="og:site_name" content="Đảng bộ Khối các cơ quan tỉnh" /></head>'
        f"<body><div class='noidung'><p>{LONG * 3}</p></div></body></html>"
    ).encode()

    article = parse_article_page(content, url=HOI_NGHI, declared_charset=None, rules=HtmlRules(), tz=SAIGON)

    assert article.title == "Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 15"
    assert article.url == HOI_NGHI
    assert article.published is None
    assert LONG.strip() in body_text(article)


@pytest.mark.parametrize(
    "head",
    [
        '<meta name="author" content="&lt;script&gt;alert(1)&lt;/script&gt; Nguyễn Văn A">',
        '<meta name="author" content="&lt;b onmouseover=x&gt;Nguyễn Văn A&lt;/b&gt;">',
    ],
)
def test_an_author_written_as_markup_is_plain_text(head: str) -> None:
    content = (
        f"<html><head><title>Hội nghị quán triệt Nghị quyết của Đảng bộ Khối</title>{head}</head>"
        f"<body><h1>Hội nghị quán triệt Nghị quyết của Đảng bộ Khối</h1>"
        f"<div class='noidung'><p>{LONG * 3}</p></div></body></html>"
    ).encode()

    article = parse_article_page(content, url=HOI_NGHI, declared_charset=None, rules=HtmlRules(), tz=SAIGON)

    assert article.author == "Nguyễn Văn A"
