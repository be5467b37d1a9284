"""Golden portal pages at nested paths and from older portals (XHTML 1.0 Transitional, table
layout, DNN/ASP.NET): what the parser extracts from each, with the built-in rules.

Each page ``tests/data/portal/<name>.html`` has ``<name>.expected.json`` beside it; there
``served_at`` is the page's path on the site and ``{site}`` stands for the site's origin, so
the same golden serves this module (a fixed origin) and ``tests/test_portal_fetch.py`` (the
pages served over HTTP and ingested by ``syndication fetch``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import lxml.html
import pytest

from syndication.ingest.normalize import html_to_text
from syndication.ingest.parse_html import extract_links, parse_article_page
from syndication.types import ArticleData, HtmlRules

SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")
DATA = Path(__file__).parent / "data" / "portal"
SITE = "https://dangbokhoi.example.vn"

# Relative links and <base href> on nested pages (XHTML 1.0 Transitional, table layout).
ARTICLES = (
    "lien-ket-tuong-doi",
    "lien-ket-co-base",
    "dnn-bai-viet",
    "aspnet-bai-viet",
    "tcvn3-bai-viet",
    "vni-bai-viet",
    "tcvn3-khong-chac",
)
LISTINGS = (
    "danh-sach-tuong-doi",
    "danh-sach-co-base",
    "dnn-danh-sach",
    "aspnet-danh-sach",
    "tcvn3-danh-sach",
    "vni-danh-sach",
)
# DNN and ASP.NET WebForms pages: one <form> around everything, __VIEWSTATE, table layout;
# pages in TCVN3 and VNI (".VnTime", "VNI-Times" fonts), and one with two TCVN3 words only.


def golden(name: str, site: str = SITE) -> dict[str, Any]:
    """The expected result of a page, ``{site}`` replaced by ``site``."""
    text = (DATA / f"{name}.expected.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text.replace("{site}", site))
    return data


def page(name: str) -> bytes:
    return (DATA / f"{name}.html").read_bytes()


def body_attribute(content_html: str, xpath: str) -> list[str]:
    if not content_html:
        return []
    root = lxml.html.fragment_fromstring(content_html, create_parent="div")
    return [str(value) for value in root.xpath(xpath)]


def article_fields(
    *,
    url: str | None,
    title: str,
    summary: str,
    author: str,
    published: str | None,
    updated: str | None,
    image_url: str | None,
    content_html: str,
) -> dict[str, Any]:
    """What a golden compares, from a parsed or a stored article."""
    return {
        "url": url,
        "title": title,
        "summary": summary,
        "author": author,
        "published": published,
        "updated": updated,
        "image_url": image_url,
        "body_images": body_attribute(content_html, "//img/@src"),
        "body_links": body_attribute(content_html, "//a/@href"),
    }


def assert_article_matches(fields: dict[str, Any], content_html: str, expected: dict[str, Any]) -> None:
    """The fields equal the golden's; its body paragraphs appear in order; the body does not
    start with the title, and holds none of the golden's ``not_in_body`` (date line, site name,
    byline, page furniture)."""
    assert fields == {key: expected.get(key, []) for key in fields}
    text = html_to_text(content_html, limit=100_000)
    positions = [text.find(paragraph) for paragraph in expected["body_paragraphs"]]
    assert -1 not in positions, text
    assert positions == sorted(positions)
    assert not text.startswith(expected["title"])  # the title heading is not repeated
    for line in expected.get("not_in_body", []):
        assert line not in text


def parsed_fields(article: ArticleData) -> dict[str, Any]:
    return article_fields(
        url=article.url,
        title=article.title,
        summary=article.summary,
        author=article.author,
        published=article.published.isoformat() if article.published else None,
        updated=article.updated.isoformat() if article.updated else None,
        image_url=article.image_url,
        content_html=article.content_html,
    )


@pytest.mark.parametrize("name", ARTICLES)
def test_article_golden(name: str) -> None:
    expected = golden(name)

    article = parse_article_page(
        page(name), url=SITE + expected["served_at"], declared_charset=None, rules=HtmlRules(), tz=SAIGON
    )

    assert_article_matches(parsed_fields(article), article.content_html, expected)


@pytest.mark.parametrize("name", LISTINGS)
def test_listing_golden(name: str) -> None:
    expected = golden(name)

    found = extract_links(
        page(name), url=SITE + expected["served_at"], declared_charset=None, rules=HtmlRules()
    )

    assert list(found) == expected["links"]


@pytest.mark.parametrize(
    "base",
    [
        "javascript:alert(1)//",
        "file:///etc/",
        "data:text/html,x",
        "ftp://dangbokhoi.example.vn/",
        "http://[::1",
    ],
)
def test_base_href_that_is_not_http_is_ignored(base: str) -> None:
    content = page("lien-ket-tuong-doi").replace(
        b'<link href="css/portal.css"', f'<base href="{base}" /><link href="css/portal.css"'.encode()
    )
    expected = golden("lien-ket-tuong-doi")

    article = parse_article_page(
        content, url=SITE + expected["served_at"], declared_charset=None, rules=HtmlRules(), tz=SAIGON
    )

    assert body_attribute(article.content_html, "//a/@href") == expected["body_links"]


# --- Older portals: titles, date lines, listings ---------------------------------------------


def parse_dnn(content: bytes) -> ArticleData:
    return parse_article_page(
        content,
        url=SITE + golden("dnn-bai-viet")["served_at"],
        declared_charset=None,
        rules=HtmlRules(),
        tz=SAIGON,
    )


@pytest.mark.parametrize(
    "line",
    ["Ngày 01/12/2026 15:20", "Cập nhật: 15:20 01/12/2026", "Thứ hai, 01/12/2026 - 15:20"],
)
def test_date_line_in_the_next_table_row_is_the_published_date(line: str) -> None:
    content = page("dnn-bai-viet").replace(b"Ng\xc3\xa0y 01/12/2026 15:20", line.encode())

    article = parse_dnn(content)

    assert article.published is not None
    assert article.published.isoformat() == "2026-12-01T08:20:00+00:00"
    assert line not in html_to_text(article.content_html, limit=100_000)


@pytest.mark.parametrize(
    ("title", "shown", "site_name", "expected"),
    [
        # The portal's name says what it is.
        ("Tin A về hội nghị - Cổng TTĐT Đảng bộ tỉnh", "", "", "Tin A về hội nghị"),
        ("Cổng thông tin điện tử Huyện uỷ | Tin A về hội nghị", "", "", "Tin A về hội nghị"),
        ("Tin A về hội nghị :: Trang thông tin điện tử Xã", "", "", "Tin A về hội nghị"),
        # og:site_name names it, after or before the title.
        ("Tin A về hội nghị | Đảng bộ Khối", "", "Đảng bộ Khối", "Tin A về hội nghị"),
        ("Đảng bộ Khối – Tin A về hội nghị", "", "Đảng bộ Khối", "Tin A về hội nghị"),
        # The page shows the title alone (a table cell, not a heading).
        ("Tin A về hội nghị - Đảng bộ Khối", "Tin A về hội nghị", "", "Tin A về hội nghị"),
        # Separators inside a title the page shows whole, or with nothing to tell: kept.
        (
            "Kinh tế - xã hội tăng trưởng khá",
            "Kinh tế - xã hội tăng trưởng khá",
            "",
            "Kinh tế - xã hội tăng trưởng khá",
        ),
        ("Kinh tế - xã hội tăng trưởng khá", "", "", "Kinh tế - xã hội tăng trưởng khá"),
    ],
)
def test_site_name_is_stripped_from_the_title(title: str, shown: str, site_name: str, expected: str) -> None:
    meta = f'<meta property="og:site_name" content="{site_name}">' if site_name else ""
    cell = f'<td class="tieude">{shown}</td>' if shown else "<td>Trang chủ</td>"
    text = "Nội dung bài viết về hội nghị của Đảng bộ, được tổ chức trang trọng tại hội trường. " * 3
    content = (
        f"<html><head><title>{title}</title>{meta}</head><body><table>"
        f"<tr>{cell}</tr><tr><td><p>{text}</p></td></tr></table></body></html>"
    ).encode()

    article = parse_article_page(
        content, url=f"{SITE}/tin/a-10001.html", declared_charset=None, rules=HtmlRules(), tz=SAIGON
    )

    assert article.title == expected


def test_short_slug_paging_links_are_not_articles() -> None:
    # "p2.html" with the text "2" is the second page of the list; with a headline, an article.
    rows = "".join(
        f'<tr><td><a href="p{n}.html">Tin hoạt động số {n} của Huyện uỷ trong tháng</a></td></tr>'
        for n in (7, 8)
    )
    content = (
        f'<html><body><table>{rows}<tr><td><a href="p2.html">2</a> <a href="p3.html">3</a>'
        '<a href="p2.html">Trang sau</a></td></tr></table></body></html>'
    ).encode()

    found = extract_links(content, url=f"{SITE}/tin/p1.html", declared_charset=None, rules=HtmlRules())

    assert found == (f"{SITE}/tin/p7.html", f"{SITE}/tin/p8.html")


def test_menu_links_to_numbered_categories_are_not_articles() -> None:
    menu = "".join(
        f'<a href="/tabid/{n}/Default.aspx">Học tập và làm theo tư tưởng Hồ Chí Minh {n}</a><br />'
        for n in (90, 91, 92)
    )
    content = f"<html><body><table><tr><td>{menu}</td></tr></table></body></html>".encode()

    assert (
        extract_links(content, url=f"{SITE}/tabid/85/Default.aspx", declared_charset=None, rules=HtmlRules())
        == ()
    )
