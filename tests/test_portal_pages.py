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

ARTICLES = ("lien-ket-tuong-doi", "lien-ket-co-base")
LISTINGS = ("danh-sach-tuong-doi", "danh-sach-co-base")


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
    """The fields equal the golden's; its body paragraphs appear in order, and neither the
    title nor the date line is repeated in the body."""
    assert fields == {key: expected.get(key, []) for key in fields}
    text = html_to_text(content_html, limit=100_000)
    positions = [text.find(paragraph) for paragraph in expected["body_paragraphs"]]
    assert -1 not in positions, text
    assert positions == sorted(positions)
    assert expected["title"] not in text
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
