"""Golden portal pages served over a real loopback HTTP server at nested paths and ingested by
``syndication fetch`` (a subprocess); what was stored is read back with ``articles --format
json`` and compared with the goldens of ``tests/test_portal_pages.py``."""

from __future__ import annotations

import json
import unicodedata
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


def test_legacy_vietnamese_pages_are_stored_as_unicode_and_say_so(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    site = server.base_url
    # Old servers send no charset, or ISO-8859-1 by default.
    for name, content_type in (
        ("tcvn3-danh-sach", "text/html; charset=iso-8859-1"),
        ("tcvn3-bai-viet", "text/html; charset=iso-8859-1"),
        ("vni-danh-sach", "text/html"),
        ("vni-bai-viet", "text/html"),
        ("tcvn3-khong-chac", HTML),
    ):
        server.add(golden(name, site)["served_at"], page(name), content_type=content_type)
    unsure = golden("tcvn3-khong-chac", site)
    listing = f'<html><body><h3><a href="{unsure["served_at"]}">Provincial agencies review the year</a></h3>'
    server.add("/tieng-anh/index.html", (listing + "</body></html>").encode(), content_type=HTML)
    sources = (
        html_source("tcvn3", site + "/tcvn3/index.html")
        + html_source("vni", site + "/vni/index.html")
        + html_source("tieng-anh", site + "/tieng-anh/index.html")
    )
    conf = write_config(tmp_path, store_url, sources)

    result = syndication("fetch", config=conf)

    assert result.returncode == 0, result.stderr
    converted = "converted text from the legacy Vietnamese encoding {} to Unicode"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert f"warning: tcvn3: {site}/tcvn3/index.html: {converted.format('TCVN3 (ABC)')}" in warnings
    assert f"warning: tcvn3: {site}/tcvn3/bai-viet-1001.html: {converted.format('TCVN3 (ABC)')}" in warnings
    assert f"warning: vni: {site}/vni/bai-viet-1001.html: {converted.format('VNI')}" in warnings
    unsure_line = next(line for line in warnings if line.startswith(f"warning: tieng-anh: {unsure['url']}: "))
    assert "looks like a legacy Vietnamese encoding (TCVN3 (ABC)?) but detection is unsure" in unsure_line
    assert unsure_line.endswith("stored as is")

    for source_id in ("tcvn3", "vni", "tieng-anh"):
        name = {"tcvn3": "tcvn3-bai-viet", "vni": "vni-bai-viet", "tieng-anh": "tcvn3-khong-chac"}[source_id]
        expected = golden(name, site)
        (article,) = stored(conf, source_id).values()
        assert unicodedata.is_normalized("NFC", article["title"] + article["content_html"])
        assert_article_matches(
            stored_fields(article), article["content_html"], {**expected, "updated": None, "image_url": None}
        )

    # The warnings stay with the sources after the poll: in the table and in JSON.
    table = syndication("sources", config=conf)
    assert table.returncode == 0, table.stderr
    assert f"last warning of vni: {site}/vni/index.html: {converted.format('VNI')}" in table.stdout
    assert "last warning of tieng-anh: " in table.stdout
    listed = {s["id"]: s for s in json.loads(syndication("sources", "--format", "json", config=conf).stdout)}
    assert converted.format("TCVN3 (ABC)") in listed["tcvn3"]["last_warning"]
    assert "detection is unsure" in listed["tieng-anh"]["last_warning"]
    assert listed["tcvn3"]["last_error"] is None
