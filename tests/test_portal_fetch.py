"""Golden portal pages served over a real loopback HTTP server at nested paths and ingested by
``syndication fetch`` (a subprocess); what was stored is read back with ``articles --format
json`` and compared with the goldens of ``tests/test_portal_pages.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.httpserver import TestServer
from tests.test_cli import syndication, write_config
from tests.test_portal_pages import article_fields, assert_article_matches, golden, page

HTML = "text/html; charset=utf-8"


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def html_source(source_id: str, url: str) -> str:
    return f"""
[[sources]]
id = "{source_id}"
kind = "html"
url = "{url}"
categories = ["tin-tuc-su-kien"]
allow_private_network = true
"""


def stored(conf: Path, source_id: str) -> dict[str, dict[str, Any]]:
    """The source's stored articles by URL."""
    listed = syndication("articles", "--source", source_id, "--format", "json", config=conf)
    assert listed.returncode == 0, listed.stderr
    return {a["url"]: a for a in json.loads(listed.stdout)}


def stored_fields(article: dict[str, Any]) -> dict[str, Any]:
    return article_fields(
        url=article["url"],
        title=article["title"],
        summary=article["summary"],
        author=article["author"],
        published=article["published"].replace("Z", "+00:00"),
        updated=None,
        image_url=None,
        content_html=article["content_html"],
    )


def test_relative_links_on_nested_listing_and_article_pages(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    site = server.base_url
    listings = {name: golden(name, site) for name in ("danh-sach-tuong-doi", "danh-sach-co-base")}
    articles = {name: golden(name, site) for name in ("lien-ket-tuong-doi", "lien-ket-co-base")}
    for name, expected in (listings | articles).items():
        server.add(expected["served_at"], page(name), content_type=HTML)
    sources = "".join(html_source(name, site + expected["served_at"]) for name, expected in listings.items())
    conf = write_config(tmp_path, store_url, sources)

    result = syndication("fetch", config=conf)

    assert result.returncode == 0, result.stderr
    # Each listing's links were followed where they point (the pages missing here are 404s).
    requested = {r.path for r in server.requests}
    for expected in listings.values():
        assert {link.removeprefix(site) for link in expected["links"]} <= requested
    by_url = stored(conf, "danh-sach-tuong-doi")
    assert set(by_url) == {expected["url"] for expected in articles.values()}
    for expected in articles.values():
        article = by_url[expected["url"]]
        fields = stored_fields(article)
        # The stored form has no image field of its own; the updated date is the stored one.
        assert_article_matches(
            fields, article["content_html"], {**expected, "updated": None, "image_url": None}
        )


def test_dnn_and_aspnet_portals_without_selectors(tmp_path: Path, store_url: str, server: TestServer) -> None:
    site = server.base_url
    sources = ""
    for listing, article in (("dnn-danh-sach", "dnn-bai-viet"), ("aspnet-danh-sach", "aspnet-bai-viet")):
        for name in (listing, article):
            server.add(golden(name, site)["served_at"], page(name), content_type=HTML)
        sources += html_source(listing, site + golden(listing, site)["served_at"])
    conf = write_config(tmp_path, store_url, sources)

    result = syndication("fetch", config=conf)

    assert result.returncode == 0, result.stderr
    for listing, article in (("dnn-danh-sach", "dnn-bai-viet"), ("aspnet-danh-sach", "aspnet-bai-viet")):
        # Every article link of the listing was followed (only one page of each is served).
        requested = {r.path for r in server.requests}
        assert {link.removeprefix(site) for link in golden(listing, site)["links"]} <= requested
        expected = golden(article, site)
        by_url = stored(conf, listing)
        assert set(by_url) == {expected["url"]}
        stored_article = by_url[expected["url"]]
        # The date is the page's, not the time of the fetch.
        assert_article_matches(
            stored_fields(stored_article),
            stored_article["content_html"],
            {**expected, "updated": None, "image_url": None},
        )
