"""HttpFetcher over a real loopback HTTP server and real httpx: no mocks.

The test server listens on 127.0.0.1, an internal address, so requests set
``allow_private_network=True`` except where the refusal itself is tested.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from syndication.errors import BlockedAddressError, FetchError
from syndication.ingest.fetch import Fetcher, HttpFetcher
from syndication.types import FetchRequest, FetchResult
from tests.httpserver import Reply, Request, TestServer

T = TypeVar("T")
NOW = datetime(2024, 1, 1, tzinfo=UTC)
RSS = '<?xml version="1.0"?><rss version="2.0"><channel><title>Tin mới</title></channel></rss>'.encode()


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def make_fetcher(**options: Any) -> HttpFetcher:
    settings: dict[str, Any] = {
        "user_agent": "syndication-tests/1.0 (+https://example.org/bot)",
        "timeout": 5.0,
        "max_bytes": 1_000_000,
        "max_redirects": 5,
        "concurrency": 10,
        "per_host": 4,
        "clock": lambda: NOW,
    }
    settings.update(options)
    return HttpFetcher(**settings)


def run(work: Callable[[HttpFetcher], Awaitable[T]], **options: Any) -> T:
    """Run ``work`` with a fresh fetcher in a fresh event loop, closing both after."""

    async def main() -> T:
        async with make_fetcher(**options) as fetcher:
            return await work(fetcher)

    return asyncio.run(main())


def fetch(url: str, *, private: bool = True, **fields_and_options: Any) -> FetchResult:
    fields = {
        k: fields_and_options.pop(k)
        for k in ("etag", "last_modified", "accept", "listing")
        if k in fields_and_options
    }
    request = FetchRequest(url=url, allow_private_network=private, **fields)
    return run(lambda fetcher: fetcher.fetch(request), **fields_and_options)


def fetch_error(url: str, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, **kwargs)
    return caught.value


# -- success and conditional GET ------------------------------------------------------------


def test_ok_with_validators(server: TestServer) -> None:
    server.add(
        "/feed.rss",
        RSS,
        content_type='application/RSS+xml; charset="UTF-8"',
        etag='"v1"',
        last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
        headers={"Cache-Control": "max-age=300"},
    )
    result = fetch(server.url("/feed.rss"), accept="application/rss+xml, */*;q=0.1")
    assert result.status == 200
    assert result.content == RSS
    assert result.url == server.url("/feed.rss")
    assert result.etag == '"v1"'
    assert result.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert result.content_type == "application/rss+xml"
    assert result.charset == "utf-8"
    assert result.headers["cache-control"] == "max-age=300"
    assert all(name == name.lower() for name in result.headers)
    assert not result.not_modified
    [sent] = server.requests
    assert sent.headers["user-agent"] == "syndication-tests/1.0 (+https://example.org/bot)"
    assert sent.headers["accept"] == "application/rss+xml, */*;q=0.1"
    assert sent.headers["accept-encoding"] == "gzip, deflate"
    assert "if-none-match" not in sent.headers
    assert "if-modified-since" not in sent.headers


def test_without_charset_or_content_type(server: TestServer) -> None:
    server.add("/page", b"<html></html>", content_type="text/html")
    server.handler("/bare", lambda request: Reply(body=b"x"))
    page = fetch(server.url("/page"))
    assert (page.content_type, page.charset) == ("text/html", None)
    bare = fetch(server.url("/bare"))
    assert (bare.content_type, bare.charset, bare.etag, bare.last_modified) == (None, None, None, None)


def test_not_modified_on_second_request(server: TestServer) -> None:
    server.add("/feed.rss", RSS, etag='"v1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")

    async def twice(fetcher: HttpFetcher) -> tuple[FetchResult, FetchResult]:
        first = await fetcher.fetch(FetchRequest(url=server.url("/feed.rss"), allow_private_network=True))
        second = await fetcher.fetch(
            FetchRequest(
                url=server.url("/feed.rss"),
                etag=first.etag,
                last_modified=first.last_modified,
                allow_private_network=True,
            )
        )
        return first, second

    first, second = run(twice)
    assert first.status == 200
    assert second.status == 304
    assert second.not_modified
    assert second.content == b""
    assert second.etag == '"v1"'
    assert second.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert server.requests[1].headers["if-none-match"] == '"v1"'
    assert server.requests[1].headers["if-modified-since"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert server.hits("/feed.rss") == 2


def test_not_modified_by_date_only(server: TestServer) -> None:
    server.add("/feed.rss", RSS, last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    result = fetch(server.url("/feed.rss"), last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    assert result.status == 304
    assert result.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"


def test_changed_etag_gets_content(server: TestServer) -> None:
    server.add("/feed.rss", RSS, etag='"v2"')
    result = fetch(server.url("/feed.rss"), etag='"v1"')
    assert (result.status, result.content, result.etag) == (200, RSS, '"v2"')


# -- redirects ---------------------------------------------------------------------------------


def test_redirect_chain(server: TestServer) -> None:
    server.redirect("/old", server.url("/moved"), status=301)
    server.redirect("/moved", "/feeds/new.rss?x=1", status=307)
    server.redirect("/feeds/new.rss", "final.rss", status=308)  # relative to /feeds/
    server.add("/feeds/final.rss", RSS)
    result = fetch(server.url("/old"), etag='"v1"')
    assert result.status == 200
    assert result.content == RSS
    assert result.url == server.url("/feeds/final.rss")
    assert [r.path for r in server.requests] == ["/old", "/moved", "/feeds/new.rss?x=1", "/feeds/final.rss"]
    assert all(r.headers["if-none-match"] == '"v1"' for r in server.requests)


def test_too_many_redirects(server: TestServer) -> None:
    server.redirect("/loop", "/loop")
    error = fetch_error(server.url("/loop"), max_redirects=3)
    assert str(error) == "too many redirects (more than 3)"
    assert server.hits("/loop") == 4


def test_no_redirects_allowed(server: TestServer) -> None:
    server.redirect("/old", "/new")
    server.add("/new", RSS)
    error = fetch_error(server.url("/old"), max_redirects=0)
    assert "too many redirects" in str(error)
    assert server.hits("/new") == 0


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://example.org/feed.rss", "gopher://example.org/"]
)
def test_redirect_to_other_schemes_refused(server: TestServer, target: str) -> None:
    server.redirect("/evil", target)
    error = fetch_error(server.url("/evil"))
    assert str(error) == f"refused redirect to {target}: only http and https are followed"
    assert error.url == server.url("/evil")


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("http://xn--/", 'invalid host name "xn--": Malformed A-label'),
        ("http://tin.xn--zz-.vn/a.rss", 'invalid host name "tin.xn--zz-.vn": A-label must not end'),
        ("http://" + "a" * 64 + ".vn/", "a label is empty or longer than 63 characters"),
        ("http://a..vn/", 'invalid host name "a..vn": a label is empty'),
        ("http://exämple..com/", "Invalid IDNA hostname"),
    ],
)
def test_redirect_to_a_malformed_host_name_is_a_named_error(
    server: TestServer, target: str, problem: str
) -> None:
    server.redirect("/idna", target)
    error = fetch_error(server.url("/idna"))
    assert str(error).startswith(f"refused redirect to {target}: ")
    assert problem in str(error)
    assert (error.url, error.status) == (server.url("/idna"), 302)


@pytest.mark.parametrize("url", ["http://xn--/", "https://" + "b" * 64 + ".vn/tin.rss"])
def test_a_malformed_host_name_is_a_named_error(url: str) -> None:
    error = fetch_error(url, private=False)
    assert str(error).startswith("invalid host name")
    assert error.url == url


def test_unexpected_status(server: TestServer) -> None:
    server.add("/choices", b"", status=300)
    error = fetch_error(server.url("/choices"))
    assert (str(error), error.status) == ("unexpected HTTP status 300", 300)


def test_redirect_without_location(server: TestServer) -> None:
    server.handler("/odd", lambda request: Reply(status=302))
    error = fetch_error(server.url("/odd"))
    assert error.status == 302
    assert "without a Location header" in str(error)


# -- internal addresses -----------------------------------------------------------------------


def test_loopback_literal_refused(server: TestServer) -> None:
    server.add("/feed.rss", RSS)
    with pytest.raises(BlockedAddressError) as caught:
        fetch(server.url("/feed.rss"), private=False)
    assert str(caught.value) == (
        "refused: 127.0.0.1 is an internal address;"
        " set allow_private_network = true for this source to allow it"
    )
    assert caught.value.url == server.url("/feed.rss")
    assert server.requests == []


def test_loopback_name_refused(server: TestServer) -> None:
    server.add("/feed.rss", RSS)
    url = f"http://localhost:{server.port}/feed.rss"
    with pytest.raises(
        BlockedAddressError, match=r"^refused: localhost resolves to (127\.0\.0\.1|::1), an internal"
    ):
        fetch(url, private=False)
    assert server.requests == []
    # The same name is fetched when the source allows it.
    assert fetch(url).content == RSS


def test_ipv4_mapped_loopback_refused(server: TestServer) -> None:
    with pytest.raises(BlockedAddressError, match=r"^refused: ::ffff:127\.0\.0\.1 is an internal address"):
        fetch(f"http://[::ffff:127.0.0.1]:{server.port}/", private=False)


def test_non_http_url_refused() -> None:
    error = fetch_error("ftp://user:secret@example.org/feed.rss")
    assert str(error) == "'ftp' URLs are not fetched (only http and https): ftp://example.org/feed.rss"


# -- size caps and content encodings -------------------------------------------------------


def close_delimited(body: bytes, **headers: str) -> Callable[[Request], None]:
    """A handler sending ``body`` without Content-Length, ended by closing the connection."""

    def handle(request: Request) -> None:
        assert request.raw is not None
        request.raw.send_response(200)
        request.raw.send_header("Connection", "close")
        for name, value in headers.items():
            request.raw.send_header(name.replace("_", "-"), value)
        request.raw.end_headers()
        request.raw.wfile.write(body)

    return handle


def test_size_cap_without_content_length(server: TestServer) -> None:
    server.handler("/big", close_delimited(b"x" * 5000))
    error = fetch_error(server.url("/big"), max_bytes=1000)
    assert str(error) == "response larger than 1000 bytes"
    assert error.url == server.url("/big")


def test_body_exactly_at_the_cap(server: TestServer) -> None:
    server.handler("/exact", close_delimited(b"x" * 1000))
    assert len(fetch(server.url("/exact"), max_bytes=1000).content) == 1000


def test_content_length_over_the_cap(server: TestServer) -> None:
    server.add("/big", b"x" * 2000)
    assert str(fetch_error(server.url("/big"), max_bytes=1000)) == "response larger than 1000 bytes"


def test_content_length_refused_before_reading(server: TestServer) -> None:
    # The server claims more than it sends: reading would wait for the timeout.
    server.add("/liar", b"tiny", headers={"Content-Length": "50000000"})
    error = fetch_error(server.url("/liar"), max_bytes=1000, timeout=30.0)
    assert str(error) == "response larger than 1000 bytes"


def test_gzip_decoded(server: TestServer) -> None:
    server.add("/feed.rss", RSS * 50, gzip=True)
    result = fetch(server.url("/feed.rss"))
    assert result.content == RSS * 50
    assert result.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_decoded(server: TestServer, wbits: int) -> None:
    packer = zlib.compressobj(wbits=wbits)
    server.add("/feed.rss", packer.compress(RSS) + packer.flush(), headers={"Content-Encoding": "deflate"})
    assert fetch(server.url("/feed.rss")).content == RSS


def test_gzip_capped_after_decompression(server: TestServer) -> None:
    server.add("/feed.rss", b"a" * 5000, gzip=True)  # a few dozen bytes on the wire
    assert str(fetch_error(server.url("/feed.rss"), max_bytes=1000)) == "response larger than 1000 bytes"


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    chunk = bytes(1 << 20)
    parts = [packer.compress(chunk) for _ in range(size >> 20)]
    return b"".join([*parts, packer.flush()])


def test_gzip_bomb_refused_without_expanding(server: TestServer) -> None:
    bomb = gzip_bomb(50 << 20)
    assert len(bomb) < 100_000
    server.add("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        error = fetch_error(server.url("/bomb"), max_bytes=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(error) == "response larger than 1000000 bytes"
    assert peak < 20_000_000  # 50 MB if it were inflated in memory


def test_unsupported_content_encoding(server: TestServer) -> None:
    server.add("/feed.rss", b"\x1b\x00", headers={"Content-Encoding": "br"})
    assert str(fetch_error(server.url("/feed.rss"))) == "unsupported Content-Encoding 'br'"


def test_truncated_gzip(server: TestServer) -> None:
    server.add("/feed.rss", gzip.compress(RSS)[:-12], headers={"Content-Encoding": "gzip"})
    error = fetch_error(server.url("/feed.rss"))
    assert str(error) == "could not decompress the response from 127.0.0.1: compressed response ended early"
    assert isinstance(error.__cause__, zlib.error)


def test_corrupt_gzip(server: TestServer) -> None:
    server.add("/feed.rss", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})
    assert "could not decompress the response from 127.0.0.1" in str(fetch_error(server.url("/feed.rss")))


# -- HTTP errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"), [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error")]
)
def test_http_error_status(server: TestServer, status: int, message: str) -> None:
    server.add("/feed.rss", b"oops", status=status, headers={"Retry-After": "60"})
    error = fetch_error(server.url("/feed.rss"))
    assert (str(error), error.status, error.retry_after) == (message, status, None)


def test_unknown_path_is_404(server: TestServer) -> None:
    assert fetch_error(server.url("/nothing-here")).status == 404


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "120", NOW + timedelta(seconds=120)),
        (503, "Mon, 01 Jan 2024 00:05:00 GMT", datetime(2024, 1, 1, 0, 5, tzinfo=UTC)),
        (429, "Mon, 01 Jan 2024 07:05:00 +0700", datetime(2024, 1, 1, 0, 5, tzinfo=UTC)),
        (503, "soon", None),
        (429, "99999999999999999999", NOW + timedelta(days=3650)),
    ],
)
def test_retry_after(server: TestServer, status: int, header: str, expected: datetime | None) -> None:
    server.add("/feed.rss", b"slow down", status=status, headers={"Retry-After": header})
    error = fetch_error(server.url("/feed.rss"))
    assert error.status == status
    assert error.retry_after == expected
    if expected is not None:
        assert error.retry_after is not None
        assert error.retry_after.utcoffset() == timedelta(0)


# -- network failures --------------------------------------------------------------------------


def test_read_timeout(server: TestServer) -> None:
    released = threading.Event()

    def stall(request: Request) -> Reply:
        released.wait(2)
        return Reply(body=b"late")

    server.handler("/slow", stall)
    try:
        error = fetch_error(server.url("/slow"), timeout=0.2)
    finally:
        released.set()
    assert str(error) == "timed out after 0.2s waiting for data from 127.0.0.1"
    assert error.url == server.url("/slow")


def test_total_timeout(server: TestServer) -> None:
    released = threading.Event()

    def drip(request: Request) -> None:
        assert request.raw is not None
        request.raw.send_response(200)
        request.raw.send_header("Content-Length", "1000")
        request.raw.end_headers()
        for _ in range(1000):
            request.raw.wfile.write(b"x")
            request.raw.wfile.flush()
            if released.wait(0.02):
                return

    server.handler("/drip", drip)
    try:
        error = fetch_error(server.url("/drip"), timeout=1.0, total_timeout=0.2)
    finally:
        released.set()
    assert str(error) == f"timed out after 0.2s fetching {server.url('/drip')}"


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = fetch_error(f"http://127.0.0.1:{port}/feed.rss")
    assert str(error) == "connection refused by 127.0.0.1"
    assert error.status is None
    assert error.__cause__ is not None


def test_name_not_resolved() -> None:
    try:
        socket.getaddrinfo("no-such-host.invalid", 80)
    except socket.gaierror:
        pass
    else:
        pytest.skip("this resolver answers for .invalid names")
    error = fetch_error("http://no-such-host.invalid/feed.rss", private=False)
    assert str(error) == "name not resolved: no-such-host.invalid"


def test_server_closes_without_answering(server: TestServer) -> None:
    server.handler("/hangup", lambda request: None)
    error = fetch_error(server.url("/hangup"))
    assert str(error).startswith("127.0.0.1 broke the HTTP protocol: ")


# -- credentials ---------------------------------------------------------------------------------


def test_credentials_used_but_never_shown(server: TestServer) -> None:
    server.add("/private.rss", RSS)
    server.add("/gone.rss", b"", status=410)
    base = f"http://reader:hunter2@127.0.0.1:{server.port}"
    result = fetch(base + "/private.rss")
    assert result.url == server.url("/private.rss")
    assert server.requests[0].headers["authorization"].startswith("Basic ")
    error = fetch_error(base + "/gone.rss")
    assert "hunter2" not in str(error)
    assert error.url == server.url("/gone.rss")


# -- concurrency -------------------------------------------------------------------------------


class InFlight:
    """A handler that counts requests being served at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __call__(self, request: Request) -> Reply:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.03)
        with self.lock:
            self.now -= 1
        return Reply(body=b"ok")


def fetch_all(urls: list[str], **options: Any) -> list[FetchResult]:
    async def work(fetcher: HttpFetcher) -> list[FetchResult]:
        requests = [FetchRequest(url=url, allow_private_network=True) for url in urls]
        return list(await asyncio.gather(*(fetcher.fetch(r) for r in requests)))

    return run(work, **options)


def test_per_host_limit(server: TestServer) -> None:
    counter = InFlight()
    server.handler("/item", counter)
    results = fetch_all([server.url(f"/item?n={n}") for n in range(8)], per_host=2, concurrency=10)
    assert [r.content for r in results] == [b"ok"] * 8
    assert 1 <= counter.most <= 2


def test_global_limit_across_hosts(server: TestServer) -> None:
    counter = InFlight()
    server.handler("/item", counter)
    hosts = ["127.0.0.1", "localhost"]
    urls = [f"http://{hosts[n % 2]}:{server.port}/item?n={n}" for n in range(8)]
    results = fetch_all(urls, per_host=4, concurrency=2)
    assert len(results) == 8
    assert 1 <= counter.most <= 2


def test_slow_host_does_not_block_others(server: TestServer) -> None:
    """A request queued behind a busy host holds no global slot.

    Two requests to 127.0.0.1 (one slot per host) wait until a request to
    localhost arrives. With two global slots that request gets through only if
    the queued one is not holding the second slot.
    """
    other_host_seen = threading.Event()

    def hold(request: Request) -> Reply:
        return Reply(body=b"held" if other_host_seen.wait(3) else b"starved")

    def release(request: Request) -> Reply:
        other_host_seen.set()
        return Reply(body=b"released")

    server.handler("/hold", hold)
    server.handler("/release", release)
    urls = [server.url("/hold?n=1"), server.url("/hold?n=2"), f"http://localhost:{server.port}/release"]
    results = fetch_all(urls, per_host=1, concurrency=2)
    assert [r.content for r in results] == [b"held", b"held", b"released"]


# -- file: URLs ----------------------------------------------------------------------------------


def test_file_url(tmp_path: Path) -> None:
    path = tmp_path / "tin mới.xml"
    path.write_bytes(RSS)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    url = path.as_uri()
    result = fetch(url, private=False)
    assert (result.status, result.content, result.url) == (200, RSS, url)
    assert result.last_modified == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert result.content_type in ("application/xml", "text/xml")
    again = fetch(url, private=False, last_modified=result.last_modified)
    assert (again.status, again.content, again.last_modified) == (304, b"", result.last_modified)
    path.write_bytes(RSS + b"\n")
    os.utime(path, (1_700_000_100, 1_700_000_100))
    changed = fetch(url, private=False, last_modified=result.last_modified)
    assert (changed.status, changed.content) == (200, RSS + b"\n")


def test_missing_file(tmp_path: Path) -> None:
    error = fetch_error((tmp_path / "missing.xml").as_uri())
    assert str(error) == f"file not found: {tmp_path / 'missing.xml'}"


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    assert str(fetch_error(tmp_path.as_uri())).startswith(f"cannot read {tmp_path}: ")


def test_file_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"x" * 2000)
    assert "file larger than 1000 bytes" in str(fetch_error(path.as_uri(), max_bytes=1000))


@pytest.mark.parametrize("url", ["file://example.org/etc/hosts", "file:relative/feed.xml"])
def test_file_url_must_be_local_and_absolute(url: str) -> None:
    assert str(fetch_error(url)) == f"not a local absolute file URL: {url}"


@pytest.fixture
def portal(tmp_path: Path) -> Path:
    """A mirrored portal: ``portal/tin/listing.html`` and an article beside it; a secret
    outside the folder, a symlink to it inside; a named pipe inside."""
    folder = tmp_path / "portal" / "tin"
    (folder / "con").mkdir(parents=True)
    (folder / "listing.html").write_bytes(b"<html>listing</html>")
    (folder / "con" / "bai-10001.html").write_bytes(b"<html>bai</html>")
    (tmp_path / "portal" / "bi-mat.html").write_bytes(b"secret")
    (folder / "lien-ket.html").symlink_to(tmp_path / "portal" / "bi-mat.html")
    (folder / "lien-ket-trong.html").symlink_to(folder / "con" / "bai-10001.html")
    (folder / "thu-muc-ngoai").symlink_to(tmp_path / "portal", target_is_directory=True)
    os.mkfifo(folder / "ong.html")
    return folder


def test_file_links_of_a_listing_are_read_inside_its_folder(portal: Path) -> None:
    listing = (portal / "listing.html").as_uri()
    assert fetch((portal / "con" / "bai-10001.html").as_uri(), listing=listing).content == b"<html>bai</html>"
    inside = fetch((portal / "lien-ket-trong.html").as_uri(), listing=listing)
    assert inside.content == b"<html>bai</html>"
    assert fetch(f"{listing.rsplit('/', 1)[0]}/con/%2e%2e/con/bai-10001.html", listing=listing).status == 200


@pytest.mark.parametrize(
    "link",
    [
        "%2e%2e/bi-mat.html",
        "%2E%2E%2Fbi-mat.html",
        "%252e%252e/bi-mat.html",
        "%25252e%25252e%25252fbi-mat.html",
        "con/%2e%2e/%2e%2e/bi-mat.html",
        "lien-ket.html",  # a symlink leading out
        "thu-muc-ngoai/bi-mat.html",  # through a symlinked folder
        "%2e%2e/" * 30 + "etc/passwd",
        "%2e%2e/" * 30 + "proc/self/environ",
    ],
)
def test_file_links_of_a_listing_never_leave_its_folder(portal: Path, link: str) -> None:
    listing = (portal / "listing.html").as_uri()
    url = f"{listing.rsplit('/', 1)[0]}/{link}"
    error = fetch_error(url, listing=listing)
    assert str(error).startswith("refused: ")
    assert "outside the folder of the listing" in str(error)
    assert error.url == url


@pytest.mark.parametrize(
    "path", ["/proc/self/environ", "/proc/self/../self/status", "/sys/kernel/hostname", "/dev/zero"]
)
def test_proc_sys_and_dev_are_never_read(path: str) -> None:
    url = "file://" + path
    error = fetch_error(url)
    assert str(error).startswith("refused: ")
    assert "system folder" in str(error)


def test_a_symlink_into_proc_is_never_read(tmp_path: Path) -> None:
    (tmp_path / "moi-truong.xml").symlink_to("/proc/self/environ")
    error = fetch_error((tmp_path / "moi-truong.xml").as_uri())
    assert str(error).startswith("refused: ")


def test_a_named_pipe_is_not_read(portal: Path) -> None:
    listing = (portal / "listing.html").as_uri()
    error = fetch_error((portal / "ong.html").as_uri(), listing=listing)
    assert str(error) == f"cannot read {portal / 'ong.html'}: not a regular file"


@pytest.mark.parametrize("url", ["file:///tmp/a%00b.xml", "file:///tmp/%2500.xml"])
def test_a_nul_in_a_file_url_is_refused(url: str) -> None:
    assert str(fetch_error(url)).startswith("refused: ")


def test_a_file_link_from_a_web_listing_is_refused(portal: Path) -> None:
    error = fetch_error((portal / "con" / "bai-10001.html").as_uri(), listing="https://portal.example.vn/tin")
    assert str(error).startswith("refused: ")


def test_http_fetcher_is_a_fetcher(server: TestServer) -> None:
    server.add("/feed.rss", RSS)

    async def through_the_protocol(fetcher: HttpFetcher) -> FetchResult:
        typed: Fetcher = fetcher
        return await typed.fetch(FetchRequest(url=server.url("/feed.rss"), allow_private_network=True))

    assert run(through_the_protocol).content == RSS


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"total_timeout": -1},
        {"concurrency": 0},
        {"per_host": 0},
        {"max_bytes": 0},
        {"max_redirects": -1},
    ],
)
def test_nonsense_limits_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        make_fetcher(**options)
