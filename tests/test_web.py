"""The web app over real HTTP: uvicorn on a loopback port, httpx as the client.

The provider is a fake holding hand-made documents (small XML and JSON with
Vietnamese text), so these tests do not depend on the feed renderer.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from syndication.errors import StoreError
from syndication.types import Article, Channel, FeedDocument, FeedFormat, FeedPage, FeedSpec
from syndication.web.app import FeedProvider, WebApp, create_app
from syndication.web.conditional import (
    BadPageError,
    accepts_gzip,
    etag_matches,
    gzip_etag,
    http_date,
    modified_since,
    parse_page,
)
from syndication.web.pages import vietnamese_datetime
from tests.webserver import AppServer

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
BUILT = datetime(2026, 11, 27, 1, 30, 15, 123456, tzinfo=UTC)
BUILT_HTTP = "Fri, 27 Nov 2026 01:30:15 GMT"
MAX_AGE = 120

CONTENT_TYPES: dict[FeedFormat, str] = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}

CHANNEL = Channel(
    title="Cổng thông tin Đảng bộ tỉnh",
    link="https://tin.example.vn/",
    description="Tin tức, sự kiện và văn bản của Đảng bộ tỉnh",
    language="vi",
    rights="© Đảng bộ Khối các cơ quan tỉnh",
    ttl=timedelta(minutes=30),
)

FEEDS = (
    FeedSpec(name="all", title="Tất cả tin", description="Mọi tin bài mới nhất"),
    FeedSpec(
        name="xay-dung-dang",
        title="Xây dựng Đảng",
        description="Tin về công tác xây dựng Đảng",
        category="xay-dung-dang",
    ),
    FeedSpec(
        name="source-baochinhphu",
        title="Báo Chính phủ <script>alert(1)</script>",
        description="Tin lấy từ Báo Chính phủ",
        source_id="baochinhphu",
    ),
)


def _body(name: str, format_: FeedFormat, page: int) -> bytes:
    title = f"Nguồn tin {name}: Hội nghị Ban Chấp hành Đảng bộ tỉnh lần thứ {page}"
    if format_ == "json":
        item = {
            "id": f"tag:tin.example.vn,2026:{page}",
            "title": "Đồng chí Bí thư Tỉnh ủy thăm và làm việc",
            "content_html": "<p>Sáng 27/11, đồng chí Bí thư…</p>",
        }
        feed = {
            "version": "https://jsonfeed.org/version/1.1",
            "title": title,
            "language": "vi",
            "items": [item],
        }
        text = json.dumps(feed, ensure_ascii=False)
    elif format_ == "atom":
        text = (
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
            f'xml:lang="vi"><title>{title}</title><id>tag:tin.example.vn,2026:{name}:{page}</id>'
            "<entry><title>Đồng chí Bí thư Tỉnh ủy thăm và làm việc</title></entry></feed>\n"
        )
    else:
        text = (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>{title}</title><language>vi</language><item><title>Đồng chí Bí thư "
            "Tỉnh ủy thăm và làm việc tại huyện</title><description>Sáng 27/11, đồng chí Bí thư "
            "Tỉnh ủy đã thăm và làm việc.</description></item></channel></rss>\n"
        )
    return text.encode() * 8  # long enough for gzip to be worth it


def make_document(
    name: str, format_: FeedFormat, page: int = 1, *, body: bytes | None = None
) -> FeedDocument:
    body = _body(name, format_, page) if body is None else body
    return FeedDocument(
        name=name,
        format=format_,
        page=page,
        body=body,
        content_type=CONTENT_TYPES[format_],
        etag=f'"{hashlib.sha256(body).hexdigest()[:24]}"',
        last_modified=BUILT,
    )


def make_article(number: int, **changes: object) -> Article:
    values: dict[str, object] = {
        "id": number,
        "identity": f"url:https://baochinhphu.vn/bai-{number}.htm",
        "guid": None,
        "url": f"https://baochinhphu.vn/bai-{number}.htm",
        "title": f"Thủ tướng chủ trì phiên họp Chính phủ thường kỳ số {number}",
        "summary": "Sáng nay, Thủ tướng Chính phủ chủ trì phiên họp thường kỳ tháng 11.",
        "content_html": "<p>Nội dung đầy đủ không được hiển thị trên trang này.</p>",
        "author": "Nhật Bắc",
        "published": BUILT,
        "updated": BUILT,
        "first_seen": BUILT,
        "image_url": None,
        "source_id": "baochinhphu",
        "categories": ("xay-dung-dang",),
    }
    values.update(changes)
    return Article(**values)  # type: ignore[arg-type]


class FakeProvider:
    """A ``FeedProvider`` over documents held in dicts; it counts every call."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.document_calls: list[tuple[str, FeedFormat, int]] = []
        self.cache: dict[tuple[str, FeedFormat, int], FeedDocument] = {
            (feed.name, format_, 1): make_document(feed.name, format_)
            for feed in FEEDS
            for format_ in CONTENT_TYPES
        }
        self.cache[("all", "rss", 2)] = make_document("all", "rss", 2)
        self.on_demand: dict[tuple[str, FeedFormat, int], FeedDocument] = {
            ("all", "rss", 3): make_document("all", "rss", 3)
        }
        self.pages: dict[str, FeedPage] = {
            feed.name: FeedPage(
                feed=feed,
                page=1,
                last_page=3,
                articles=(make_article(1), make_article(2)),
                updated=BUILT,
                source_titles={"baochinhphu": "Báo điện tử Chính phủ"},
            )
            for feed in FEEDS
        }
        self.failure: Exception | None = None
        self.opml_document = FeedDocument(
            name="feeds",
            format="rss",  # no OPML format exists among feed formats: the field is not read
            page=1,
            body=(
                '<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0"><head><title>'
                "Nguồn tin</title></head><body>"
                '<outline type="rss" text="Tất cả tin" xmlUrl="https://tin.example.vn/feeds/all.rss"/>'
                "</body></opml>\n"
            ).encode(),
            content_type="text/x-opml; charset=utf-8",
            etag='"opml-1"',
            last_modified=BUILT,
        )
        self.stylesheet_bytes = (
            '<?xml version="1.0" encoding="utf-8"?>\n<xsl:stylesheet version="1.0" '
            'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/">'
            '<html lang="vi"><body><p>Đây là một nguồn tin.</p></body></html>'
            "</xsl:template></xsl:stylesheet>\n"
        ).encode()

    def feeds(self) -> Sequence[FeedSpec]:
        self.calls["feeds"] += 1
        return FEEDS

    def channel(self) -> Channel:
        self.calls["channel"] += 1
        return CHANNEL

    def cached(self, name: str, fmt: FeedFormat, page: int) -> FeedDocument | None:
        self.calls["cached"] += 1
        return self.cache.get((name, fmt, page))

    async def document(self, name: str, fmt: FeedFormat, page: int) -> FeedDocument | None:
        self.calls["document"] += 1
        self.document_calls.append((name, fmt, page))
        if self.failure is not None:
            raise self.failure
        return self.on_demand.get((name, fmt, page))

    async def latest(self, name: str) -> FeedPage | None:
        self.calls["latest"] += 1
        if self.failure is not None:
            raise self.failure
        return self.pages.get(name)

    def opml(self) -> FeedDocument:
        self.calls["opml"] += 1
        return self.opml_document

    def stylesheet(self) -> bytes:
        self.calls["stylesheet"] += 1
        return self.stylesheet_bytes


def _is_provider(provider: FakeProvider) -> FeedProvider:
    return provider  # mypy checks here that the fake keeps to the Protocol


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def app(provider: FakeProvider) -> WebApp:
    return create_app(_is_provider(provider), templates_dir=TEMPLATES, cache_max_age=MAX_AGE)


@pytest.fixture(scope="module")
def running_server() -> Iterator[AppServer]:
    with AppServer(_no_app) as running:
        yield running


@pytest.fixture
def server(running_server: AppServer, app: WebApp) -> Iterator[AppServer]:
    """The module's server, serving this test's own app."""
    running_server.app = app
    yield running_server
    running_server.app = _no_app


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a request reached the server between tests")


@pytest.fixture
def client(server: AppServer) -> Iterator[httpx.Client]:
    # httpx asks for gzip by default; these tests ask for it only when they mean to.
    with httpx.Client(base_url=server.base_url, headers={"Accept-Encoding": "identity"}) as opened:
        yield opened


def raw_get(client: httpx.Client, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """A GET whose body is returned as sent, without httpx decoding its content coding."""
    with client.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


# --- feeds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("format_", ["rss", "atom", "json"])
def test_feed_is_served_with_its_headers(client: httpx.Client, format_: FeedFormat) -> None:
    document = make_document("xay-dung-dang", format_)

    response = client.get(f"/feeds/xay-dung-dang.{format_}")

    assert response.status_code == 200
    assert response.content == document.body
    assert response.headers["content-type"] == CONTENT_TYPES[format_]
    assert response.headers["content-length"] == str(len(document.body))
    assert response.headers["etag"] == document.etag
    assert response.headers["last-modified"] == BUILT_HTTP
    assert response.headers["cache-control"] == f"public, max-age={MAX_AGE}"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in response.headers


def test_vietnamese_text_is_sent_byte_exact(client: httpx.Client) -> None:
    response = client.get("/feeds/all.json")

    assert response.content == make_document("all", "json").body
    assert "Đồng chí Bí thư Tỉnh ủy" in response.text


def test_the_cached_document_is_served_without_building(client: httpx.Client, provider: FakeProvider) -> None:
    for _ in range(3):
        assert client.get("/feeds/all.rss").status_code == 200
        assert client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"}).status_code == 200
    assert client.get("/feeds/all.rss?page=2").status_code == 200

    assert provider.calls["cached"] == 7
    assert provider.calls["document"] == 0
    assert provider.calls["latest"] == 0


@pytest.mark.parametrize(
    "if_none_match",
    [
        "{etag}",
        '"older", {etag}',
        '"older",{etag} , "oldest"',
        "W/{etag}",
        "*",
        "{gzip_etag}",
    ],
)
def test_if_none_match_gives_304(client: httpx.Client, if_none_match: str) -> None:
    document = make_document("all", "rss")
    header = if_none_match.format(etag=document.etag, gzip_etag=gzip_etag(document.etag))

    response = client.get("/feeds/all.rss", headers={"If-None-Match": header})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == document.etag
    assert response.headers["cache-control"] == f"public, max-age={MAX_AGE}"
    assert response.headers["last-modified"] == BUILT_HTTP
    assert "content-length" not in response.headers


def test_if_none_match_in_two_header_lines(server: AppServer) -> None:
    etag = make_document("all", "rss").etag
    headers = [("If-None-Match", '"older"'), ("If-None-Match", etag), ("Accept-Encoding", "identity")]

    response = httpx.get(server.url("/feeds/all.rss"), headers=headers)

    assert response.status_code == 304


def test_if_none_match_that_differs_gives_200_and_if_modified_since_is_not_read(
    client: httpx.Client,
) -> None:
    response = client.get(
        "/feeds/all.rss",
        headers={"If-None-Match": '"something-else"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    )

    assert response.status_code == 200
    assert response.content == make_document("all", "rss").body


@pytest.mark.parametrize(
    ("if_modified_since", "status"),
    [
        (BUILT_HTTP, 304),
        ("Fri, 27 Nov 2026 01:30:16 GMT", 304),
        ("Friday, 27-Nov-26 01:30:15 GMT", 304),  # the obsolete RFC 850 form
        ("Fri, 27 Nov 2026 01:30:14 GMT", 200),
        ("Thu, 01 Jan 2026 00:00:00 GMT", 200),
        ("yesterday", 200),
    ],
)
def test_if_modified_since(client: httpx.Client, if_modified_since: str, status: int) -> None:
    response = client.get("/feeds/all.atom", headers={"If-Modified-Since": if_modified_since})

    assert response.status_code == status
    assert response.headers["etag"] == make_document("all", "atom").etag


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("gzip, deflate, br, zstd", True),
        ("deflate, gzip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("GZIP;Q=1.0", True),
        ("identity", False),
        ("br", False),
        ("gzip;q=0", False),
        ("gzip; q=0.000, br", False),
        ("*;q=0.5, gzip;q=0", False),
        ("*;q=0", False),
    ],
)
def test_gzip_only_when_the_client_accepts_it(
    client: httpx.Client, accept_encoding: str, gzipped: bool
) -> None:
    document = make_document("all", "json")

    response, raw = raw_get(client, "/feeds/all.json", **{"Accept-Encoding": accept_encoding})

    assert response.status_code == 200
    assert response.headers["vary"] == "Accept-Encoding"
    if gzipped:
        assert response.headers["content-encoding"] == "gzip"
        assert gzip.decompress(raw) == document.body
        assert response.headers["content-length"] == str(len(raw))
        assert response.headers["etag"] == document.etag[:-1] + '-gz"'
    else:
        assert "content-encoding" not in response.headers
        assert raw == document.body
        assert response.headers["etag"] == document.etag


def test_gzip_form_is_computed_once_per_document(client: httpx.Client, app: WebApp) -> None:
    bodies = set()
    for _ in range(5):
        bodies.add(raw_get(client, "/feeds/all.rss", **{"Accept-Encoding": "gzip"})[1])
    head = client.head("/feeds/all.rss", headers={"Accept-Encoding": "gzip"})

    assert len(bodies) == 1
    assert app.files.compressions == 1
    assert head.headers["content-length"] == str(len(bodies.pop()))

    raw_get(client, "/feeds/all.atom", **{"Accept-Encoding": "gzip"})
    assert app.files.compressions == 2


@pytest.mark.parametrize("which", ["identity", "gzip"])
def test_either_tag_validates_either_coding(client: httpx.Client, which: str) -> None:
    document = make_document("all", "rss")
    sent = document.etag if which == "identity" else gzip_etag(document.etag)

    response = client.get("/feeds/all.rss", headers={"Accept-Encoding": "gzip", "If-None-Match": sent})

    assert response.status_code == 304
    assert response.headers["etag"] == gzip_etag(document.etag)  # the tag of what a 200 would carry
    assert "content-encoding" not in response.headers


def test_a_rebuilt_document_with_new_bytes_gets_a_new_tag(
    client: httpx.Client, provider: FakeProvider
) -> None:
    old = client.get("/feeds/all.rss")
    provider.cache[("all", "rss", 1)] = make_document("all", "rss", body=b"<rss>new</rss>")

    response = client.get("/feeds/all.rss", headers={"If-None-Match": old.headers["etag"]})

    assert response.status_code == 200
    assert response.content == b"<rss>new</rss>"
    assert response.headers["etag"] != old.headers["etag"]


@pytest.mark.parametrize("accept_encoding", ["identity", "gzip"])
def test_head_sends_the_headers_of_get_without_a_body(client: httpx.Client, accept_encoding: str) -> None:
    get, raw = raw_get(client, "/feeds/all.atom", **{"Accept-Encoding": accept_encoding})

    head = client.head("/feeds/all.atom", headers={"Accept-Encoding": accept_encoding})

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(raw))
    for name in ("content-type", "etag", "last-modified", "cache-control", "vary"):
        assert head.headers[name] == get.headers[name]


def test_head_answers_304_too(client: httpx.Client) -> None:
    etag = make_document("all", "atom").etag

    response = client.head("/feeds/all.atom", headers={"If-None-Match": etag})

    assert response.status_code == 304


def test_cors_preflight(client: httpx.Client) -> None:
    response = client.options(
        "/feeds/all.json",
        headers={
            "Origin": "https://cong-khac.example.vn",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "*"
    assert response.content == b""


def test_cross_origin_get_can_read_the_etag(client: httpx.Client) -> None:
    response = client.get("/feeds/all.json", headers={"Origin": "https://cong-khac.example.vn"})

    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "ETag"


def test_other_methods_are_refused(client: httpx.Client) -> None:
    response = client.post("/feeds/all.rss", content=b"x")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"


def test_second_page_from_the_cache(client: httpx.Client, provider: FakeProvider) -> None:
    response = client.get("/feeds/all.rss?page=2")

    assert response.status_code == 200
    assert response.content == make_document("all", "rss", 2).body
    assert provider.calls["document"] == 0


def test_older_page_is_built_on_demand(client: httpx.Client, provider: FakeProvider) -> None:
    first = client.get("/feeds/all.rss?page=3")
    again = client.get("/feeds/all.rss?page=3", headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200
    assert first.content == make_document("all", "rss", 3).body
    assert again.status_code == 304
    assert provider.document_calls == [("all", "rss", 3), ("all", "rss", 3)]


def test_other_query_parameters_are_ignored(client: httpx.Client) -> None:
    response = client.get("/feeds/all.rss?_=1732670000&page=2&utm_source=reader")

    assert response.content == make_document("all", "rss", 2).body


def test_page_one_explicitly(client: httpx.Client) -> None:
    assert client.get("/feeds/all.rss?page=1").content == client.get("/feeds/all.rss").content


@pytest.mark.parametrize("query", ["page=abc", "page=0", "page=-1", "page=", "page=1.5", "page=1&page=2"])
def test_bad_page_is_400(client: httpx.Client, provider: FakeProvider, query: str) -> None:
    response = client.get(f"/feeds/all.rss?{query}")

    assert response.status_code == 400
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Số trang không hợp lệ" in response.text
    assert "Invalid page" in response.text
    assert provider.calls["cached"] == 0


def test_page_beyond_the_last_is_404(client: httpx.Client, provider: FakeProvider) -> None:
    response = client.get("/feeds/all.rss?page=9")

    assert response.status_code == 404
    assert provider.document_calls == [("all", "rss", 9)]


@pytest.mark.parametrize(
    "path",
    ["/feeds/khong-co.rss", "/feeds/khong-co.json", "/feeds/.rss", "/feeds/all/x.rss", "/feeds/all.xml"],
)
def test_unknown_feed_is_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "Không tìm thấy" in response.text
    assert "location" not in response.headers


def test_unknown_feed_404_is_readable_cross_origin(client: httpx.Client) -> None:
    response = client.get("/feeds/khong-co.json")

    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == "*"


def test_store_failure_on_a_miss_is_503(client: httpx.Client, provider: FakeProvider) -> None:
    provider.failure = StoreError("database is locked")

    response = client.get("/feeds/all.rss?page=5")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert "database" not in response.text


def test_opml(client: httpx.Client, provider: FakeProvider) -> None:
    response = client.get("/feeds.opml")
    again = client.get("/feeds.opml", headers={"If-None-Match": '"opml-1"'})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/x-opml; charset=utf-8"
    assert response.content == provider.opml_document.body
    assert response.headers["etag"] == '"opml-1"'
    assert response.headers["last-modified"] == BUILT_HTTP
    assert again.status_code == 304


def test_stylesheet(client: httpx.Client, provider: FakeProvider, app: WebApp) -> None:
    response = client.get("/feeds/feed.xsl")
    again = client.get("/feeds/feed.xsl", headers={"If-None-Match": response.headers["etag"]})
    _, raw = raw_get(client, "/feeds/feed.xsl", **{"Accept-Encoding": "gzip"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xsl; charset=utf-8"
    assert response.content == provider.stylesheet_bytes
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])
    assert again.status_code == 304
    assert gzip.decompress(raw) == provider.stylesheet_bytes
    assert app.files.compressions == 1


# --- pages for people ----------------------------------------------------------------------


def test_index_lists_every_feed(client: httpx.Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert '<html lang="vi">' in html
    assert f"<title>Nguồn tin – {CHANNEL.title}</title>" in html
    assert "Nguồn tin (RSS/Atom/JSON Feed) để theo dõi bằng trình đọc tin" in html
    for feed in FEEDS:
        for format_ in ("rss", "atom", "json"):
            assert f"https://tin.example.vn/feeds/{feed.name}.{format_}" in html
        assert f'href="feeds/{feed.name}/"' in html
    assert '<a href="feeds.opml">Tải danh sách tất cả nguồn tin (OPML) để nhập vào trình đọc tin</a>' in html
    assert "<script>" not in html
    assert "Báo Chính phủ &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_index_announces_the_all_feed(client: httpx.Client) -> None:
    html = client.get("/").text
    links = re.findall(r'<link rel="alternate" type="([^"]+)" title="([^"]+)" href="([^"]+)">', html)

    assert links == [
        ("application/rss+xml", "Tất cả tin (RSS)", "https://tin.example.vn/feeds/all.rss"),
        ("application/atom+xml", "Tất cả tin (Atom)", "https://tin.example.vn/feeds/all.atom"),
        ("application/feed+json", "Tất cả tin (JSON Feed)", "https://tin.example.vn/feeds/all.json"),
    ]


def test_pages_carry_security_headers(client: httpx.Client) -> None:
    for path in ("/", "/feeds/all/", "/khong-co"):
        headers = client.get(path).headers
        assert headers["content-security-policy"] == (
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
            "base-uri 'none'; form-action 'self'"
        )
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert headers["x-content-type-options"] == "nosniff"


def test_pages_use_no_external_resources(client: httpx.Client) -> None:
    for path in ("/", "/feeds/all/"):
        html = client.get(path).text
        assert "<script" not in html
        assert not re.search(r'<(?:link|img)[^>]+(?:href|src)="https?://(?![^"]*/feeds/)', html)
        assert "@import" not in html


def test_feed_page(client: httpx.Client, provider: FakeProvider) -> None:
    response = client.get("/feeds/xay-dung-dang/")

    assert response.status_code == 200
    html = response.text
    assert "<h1>Xây dựng Đảng</h1>" in html
    assert "Tin về công tác xây dựng Đảng" in html
    for format_ in ("rss", "atom", "json"):
        assert f'href="https://tin.example.vn/feeds/xay-dung-dang.{format_}"' in html  # alternate link
        assert f'<code class="url">https://tin.example.vn/feeds/xay-dung-dang.{format_}</code>' in html
    assert '<a href="https://baochinhphu.vn/bai-1.htm" rel="noopener">' in html
    assert "Thủ tướng chủ trì phiên họp Chính phủ thường kỳ số 2" in html
    # 01:30 UTC is 08:30 in Hà Nội, on a Friday.
    assert '<time datetime="2026-11-27T01:30:15.123456+00:00">Thứ Sáu, 27/11/2026 08:30</time>' in html
    assert "Nguồn: Báo điện tử Chính phủ" in html
    assert "Sáng nay, Thủ tướng Chính phủ chủ trì phiên họp thường kỳ tháng 11." in html
    assert "Nội dung đầy đủ" not in html  # the body is for feeds, not for this page
    assert provider.calls["latest"] == 1


def test_feed_page_escapes_what_sources_sent(client: httpx.Client, provider: FakeProvider) -> None:
    hostile = make_article(
        7,
        title='Tin <script>alert("x")</script> nóng',
        summary="<img src=x onerror=alert(1)>",
        url="javascript:alert(1)",
    )
    feed = FEEDS[2]
    provider.pages[feed.name] = FeedPage(feed=feed, page=1, last_page=1, articles=(hostile,), updated=BUILT)

    html = client.get(f"/feeds/{feed.name}/").text

    assert "<script>" not in html
    assert "<img" not in html
    assert "javascript:" not in html
    assert "Tin &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; nóng" in html
    assert "<h1>Báo Chính phủ &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert "Nguồn: baochinhphu" in html  # no display name given: the source id


def test_feed_page_of_an_unknown_feed_is_404(client: httpx.Client) -> None:
    response = client.get("/feeds/khong-co/")

    assert response.status_code == 404
    assert "Không tìm thấy trang" in response.text


def test_feed_page_without_its_slash_redirects(client: httpx.Client) -> None:
    response = client.get("/feeds/xay-dung-dang")
    unknown = client.get("/feeds/khong-co")

    assert response.status_code == 301
    assert response.url.join(response.headers["location"]).path == "/feeds/xay-dung-dang/"
    assert unknown.status_code == 404


def test_unknown_path_is_a_vietnamese_404_page(client: httpx.Client) -> None:
    response = client.get("/khong/co/trang/nay")

    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<html lang="vi">' in response.text
    assert "Không tìm thấy trang" in response.text
    assert 'href="https://tin.example.vn/"' in response.text


def test_store_failure_on_a_page_is_503(client: httpx.Client, provider: FakeProvider) -> None:
    provider.failure = StoreError("database is locked")

    response = client.get("/feeds/all/")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert "thử lại" in response.text
    assert "database" not in response.text


def test_site_time_zone_is_an_argument(provider: FakeProvider) -> None:
    app = create_app(provider, templates_dir=TEMPLATES, timezone="Europe/Paris")

    with AppServer(app) as server:
        html = httpx.get(server.url("/feeds/all/")).text

    assert "Thứ Sáu, 27/11/2026 02:30" in html


# --- the rules, without a server ----------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 23, 17, 0, tzinfo=UTC), "Thứ Ba, 24/11/2026 00:00"),
        (datetime(2026, 11, 27, 1, 30, tzinfo=UTC), "Thứ Sáu, 27/11/2026 08:30"),
        (datetime(2026, 11, 28, 9, 5, tzinfo=UTC), "Thứ Bảy, 28/11/2026 16:05"),
        (datetime(2026, 11, 29, 3, 0, tzinfo=UTC), "Chủ Nhật, 29/11/2026 10:00"),
        (datetime(2026, 11, 29, 17, 0, tzinfo=UTC), "Thứ Hai, 30/11/2026 00:00"),
    ],
)
def test_vietnamese_datetime(moment: datetime, expected: str) -> None:
    assert vietnamese_datetime(moment, ZoneInfo("Asia/Ho_Chi_Minh")) == expected


def test_vietnamese_datetime_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        vietnamese_datetime(datetime(2026, 11, 27), ZoneInfo("Asia/Ho_Chi_Minh"))


def test_http_date() -> None:
    assert http_date(BUILT) == BUILT_HTTP
    assert http_date(BUILT.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))) == BUILT_HTTP


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (b'"a"', True),
        (b'W/"a"', True),
        (b' "x" , W/"b"', True),
        (b"*", True),
        (b" * ", True),
        (b'"x", "y"', False),
        (b'"A"', False),
        (b"a", False),
        (b"", False),
        (b'"a,b"', False),
    ],
)
def test_etag_matches(header: bytes, matches: bool) -> None:
    assert etag_matches(header, frozenset({b'"a"', b'"b"'})) is matches


def test_modified_since() -> None:
    assert not modified_since(BUILT, BUILT_HTTP.encode())
    assert modified_since(BUILT, b"Fri, 27 Nov 2026 01:30:14 GMT")
    assert modified_since(BUILT, b"not a date")
    assert not modified_since(BUILT, b"Fri, 27 Nov 2026 01:30:15 -0000")


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (b"gzip", True),
        (b"gzip;q=0", False),
        (b"gzip;q=abc", False),
        (b"gzip;q=2", False),
        (b"", False),
        (b"br;q=0.9, " * 40 + b"gzip", True),
        (b"br;q=0.9, " * 40 + b"gzip;q=0", False),
    ],
)
def test_accepts_gzip(header: bytes, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


@pytest.mark.parametrize(
    ("query", "page"),
    [(b"", 1), (b"page=1", 1), (b"page=2", 2), (b"page=%32", 2), (b"x=1&page=12", 12), (b"x=1", 1)],
)
def test_parse_page(query: bytes, page: int) -> None:
    assert parse_page(query) == page


@pytest.mark.parametrize(
    "query",
    [b"page=abc", b"page=0", b"page=", b"page=-2", b"page=%D9%A3", b"page=1&page=1", b"page=1" + b"0" * 9],
)
def test_parse_page_refuses(query: bytes) -> None:
    with pytest.raises(BadPageError):
        parse_page(query)


def test_gzip_etag() -> None:
    assert gzip_etag('"abc"') == '"abc-gz"'
    assert gzip_etag('W/"abc"') == 'W/"abc-gz"'
