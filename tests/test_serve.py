"""`syndication serve` as a user runs it: a subprocess, real HTTP, a second process ingesting."""

from __future__ import annotations

import contextlib
import email
import email.policy
import email.utils
import gzip
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import feedparser
import httpx
import pytest

from syndication.core.feeds import FORMATS
from tests.httpserver import Reply, TestServer
from tests.test_cli import syndication, write_config
from tests.test_core import ITEMS, START, rss

XSS = [
    (
        "https://portal.example.vn/tin/x.html",
        "Bài có mã độc",
        '<p onclick="x()">Nội dung</p><script>alert(1)</script><iframe src="https://evil.example.org/"></iframe>'
        '<a href="javascript:alert(1)">bấm</a><img src="/a.jpg" onerror="alert(2)">',
    )
]


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Poll ``check()`` until it is true; a bounded loop, not a timing assertion."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def test_serve_feeds_and_pick_up_another_process(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS + XSS))
    conf = write_config(
        tmp_path,
        store_url,
        f"""
[feeds]
refresh = "1s"
[[sources]]
id = "tin"
url = "{server.url("/tin.rss")}"
categories = ["tin-tuc-su-kien"]
allow_private_network = true
""",
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "syndication", "--config", str(conf), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def up() -> bool:
                try:
                    return http.get("/feeds/all.rss").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(up, "the server to answer")
            assert feedparser.parse(http.get("/feeds/all.rss").content).entries == []

            fetched = syndication("fetch", config=conf)
            assert fetched.returncode == 0, fetched.stderr

            def has_items() -> bool:
                return len(feedparser.parse(http.get("/feeds/tin-tuc-su-kien.rss").content).entries) == 3

            wait_until(has_items, "the feed to show what the other process fetched")
            for fmt, content_type in (
                ("rss", "application/rss+xml"),
                ("atom", "application/atom+xml"),
                ("json", "application/feed+json"),
            ):
                response = http.get(f"/feeds/all.{fmt}")
                assert response.headers["content-type"] == f"{content_type}; charset=utf-8"
                assert response.headers["access-control-allow-origin"] == "*"
                body = response.text
                assert "Ủy ban Kiểm tra kiểm tra chi bộ" in body
                for bad in ("<script", "onerror", "onclick", "javascript:", "<iframe"):
                    assert bad not in body, (fmt, bad)
                etag = response.headers["etag"]
                again = http.get(f"/feeds/all.{fmt}", headers={"If-None-Match": etag})
                assert again.status_code == 304
                assert again.content == b""

            zipped = http.get("/feeds/all.rss", headers={"Accept-Encoding": "gzip"})
            assert zipped.headers["content-encoding"] == "gzip"
            plain = http.get("/feeds/all.rss", headers={"Accept-Encoding": "identity"})
            assert zipped.content == plain.content  # httpx decoded it: same bytes
            raw = httpx.get(f"{base}/feeds/all.rss", headers={"Accept-Encoding": "gzip"}).read()
            assert raw == plain.content or gzip.decompress(raw) == plain.content

            index = http.get("/")
            assert index.status_code == 200
            assert "https://syn.example.vn/feeds/source-tin.atom" in index.text
            assert http.get("/feeds/khong-co.rss").status_code == 404
            assert "<opml" in http.get("/feeds.opml").text
    finally:
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=20)
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors


def test_feeds_build_writes_what_the_server_sends(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS))
    conf = write_config(
        tmp_path,
        store_url,
        f'[[sources]]\nid = "tin"\nurl = "{server.url("/tin.rss")}"\n'
        'categories = ["xay-dung-dang"]\nallow_private_network = true\n',
    )
    assert syndication("fetch", config=conf).returncode == 0
    built = syndication("feeds", "build", "--out", str(tmp_path / "site"), config=conf)
    assert built.returncode == 0, built.stderr
    assert "wrote" in built.stdout
    feed = (tmp_path / "site" / "feeds" / "xay-dung-dang.rss").read_bytes()
    assert {e.title for e in feedparser.parse(feed).entries} == {t for _, t, _ in ITEMS}
    assert (tmp_path / "site" / "feeds.opml").is_file()
    bad = syndication("feeds", "build", "--out", "/proc/khong-the-ghi", config=conf)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: cannot write to /proc/khong-the-ghi")


def test_subscribe_confirm_and_one_click_unsubscribe(tmp_path: Path, store_url: str) -> None:
    """Double opt-in through the real server, with the confirmation read from the Maildir:
    opening the link confirms nothing, the page's button does."""
    outbox = tmp_path / "outbox"
    conf = write_config(
        tmp_path,
        store_url,
        f"""
[mail]
maildir = "{outbox}"
from_address = "ban-tin@example.org"
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
""",
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "syndication", "--config", str(conf), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def up() -> bool:
                try:
                    return http.get("/dang-ky").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(up, "the subscription page")
            form = http.get("/dang-ky").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf, form
            sent = http.post(
                "/dang-ky",
                data={
                    "csrf": csrf.group(1),
                    "address": "Bi-Thu@Example.org",
                    "name": "Nguyễn Thị Hoà",
                    "categories": ["xay-dung-dang"],
                    "digest": "daily",
                },
            )
            assert sent.status_code == 200
            assert "hộp thư" in sent.text

            def mailed() -> bool:
                return (outbox / "new").is_dir() and any((outbox / "new").iterdir())

            wait_until(mailed, "the confirmation e-mail in the Maildir")
            (mail_file,) = list((outbox / "new").iterdir())
            message = email.message_from_bytes(mail_file.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            assert message["To"].addresses[0].addr_spec == "bi-thu@example.org"
            body = message.get_body(("plain",)).get_content()
            link = re.search(r"https://syn\.example\.vn/xac-nhan/([A-Za-z0-9_-]+)", body)
            assert link, body
            token = link.group(1)
            # A name that looks like a person's is repeated, in the party register (issue 9, item 20).
            assert "Kính gửi đồng chí Nguyễn Thị Hoà," in body

            # A mail scanner opens the link (and follows anything it is sent to): nothing changes.
            scanned = httpx.get(f"{base}/xac-nhan/{token}", follow_redirects=True, timeout=10)
            assert scanned.status_code == 200
            assert httpx.head(f"{base}/xac-nhan/{token}", timeout=10).status_code == 200
            listed = syndication("subscribers", "list", "--format", "json", config=conf)
            assert json.loads(listed.stdout)[0]["status"] == "pending"

            # The person presses the page's button, as a browser sends it.
            button = re.search(r'name="csrf" value="([^"]+)"', scanned.text)
            assert button, scanned.text
            assert "bi***@example.org" in scanned.text
            confirmed = http.post(
                f"/xac-nhan/{token}",
                data={"csrf": button.group(1)},
                headers={"Origin": base, "Sec-Fetch-Site": "same-origin"},
            )
            assert confirmed.status_code == 200
            assert "Đã xác nhận đăng ký" in confirmed.text
            listed = syndication("subscribers", "list", "--format", "json", config=conf)
            (person,) = json.loads(listed.stdout)
            assert (person["address"], person["status"], person["categories"]) == (
                "bi-thu@example.org",
                "active",
                ["xay-dung-dang"],
            )

            tampered = http.post(f"/huy/{token[:-1]}x", data={"List-Unsubscribe": "One-Click"})
            assert tampered.status_code == 404
            one_click = http.post(f"/huy/{token}", data={"List-Unsubscribe": "One-Click"})
            assert one_click.status_code == 200
            listed = syndication("subscribers", "list", "--format", "json", config=conf)
            assert json.loads(listed.stdout)[0]["status"] == "unsubscribed"
    finally:
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=20)
    assert proc.returncode == 0, errors


@contextlib.contextmanager
def serving(conf: Path) -> Iterator[httpx.Client]:
    """``syndication serve`` on a free port until the block ends (then stopped with SIGINT)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "syndication", "--config", str(conf), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            def up() -> bool:
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return proc.poll() is not None  # exited: stop waiting, the check below fails

            wait_until(up, "the server to answer")
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            yield http
    finally:
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=20)
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors


def one_source(tmp_path: Path, store_url: str, server: TestServer, extra: str = "") -> Path:
    return write_config(
        tmp_path,
        store_url,
        f'[feeds]\nrefresh = "1s"\n{extra}[[sources]]\nid = "tin"\nurl = "{server.url("/tin.rss")}"\n'
        'categories = ["tin-tuc-su-kien"]\nallow_private_network = true\n',
    )


BACK_DATED = (
    "https://portal.example.vn/tin/cu.html",
    "Bài đăng muộn: hội nghị tuần trước",
    "<p>Cổng đăng muộn, ngày của bài là tuần trước.</p>",
)


def test_last_modified_moves_when_a_back_dated_article_joins_page_1(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    """A reader that sends only If-Modified-Since (the Last-Modified it was given) must get
    the feed again when an article dated last week joins it: Last-Modified is when the
    document changed, not the newest article date. It stays put across a restart, and
    ``feeds build`` dates its files with it."""
    server.add("/tin.rss", rss(ITEMS))
    conf = one_source(tmp_path, store_url, server)
    assert syndication("fetch", config=conf).returncode == 0
    with serving(conf) as http:
        first = http.get("/feeds/all.atom")
        assert first.status_code == 200
        since = first.headers["last-modified"]
        assert http.get("/feeds/all.atom", headers={"If-Modified-Since": since}).status_code == 304

        # The source adds an article dated a week before the newest one.
        body = rss([*ITEMS, BACK_DATED]).decode()
        newest = email.utils.format_datetime(START - timedelta(hours=len(ITEMS)))
        server.add(
            "/tin.rss", body.replace(newest, email.utils.format_datetime(START - timedelta(days=7))).encode()
        )
        assert syndication("fetch", config=conf).returncode == 0
        wait_until(
            lambda: http.get("/feeds/all.atom").headers["etag"] != first.headers["etag"], "the rebuild"
        )

        again = http.get("/feeds/all.atom", headers={"If-Modified-Since": since})
        assert again.status_code == 200
        assert BACK_DATED[1] in again.text
        changed = again.headers["last-modified"]
        assert email.utils.parsedate_to_datetime(changed) > email.utils.parsedate_to_datetime(since)
        # Unchanged since then: 304 as before.
        assert http.get("/feeds/all.atom", headers={"If-Modified-Since": changed}).status_code == 304
        assert (
            http.get("/feeds/all.atom", headers={"If-None-Match": again.headers["etag"]}).status_code == 304
        )

    with serving(conf) as http:  # a restart moves nothing
        after = http.get("/feeds/all.atom")
        assert (after.headers["etag"], after.headers["last-modified"]) == (again.headers["etag"], changed)

    built = syndication("feeds", "build", "--out", str(tmp_path / "site"), config=conf)
    assert built.returncode == 0, built.stderr
    written = (tmp_path / "site" / "feeds" / "all.atom").stat().st_mtime
    assert written == email.utils.parsedate_to_datetime(changed).timestamp()


def test_websub_hub_hears_of_changes_made_while_no_server_ran(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    """`fetch` from cron while `serve` is down changes feeds nobody announces: the next
    start pings the hub for them; a ping the hub refused is sent again."""
    pings: list[str] = []
    hub_status = [204]

    def hub(request: object) -> Reply:
        form = urllib.parse.parse_qs(getattr(request, "body", b"").decode())
        if hub_status[0] < 300:
            pings.extend(form["hub.url"])
        return Reply(status=hub_status[0])

    server.handler("/hub", hub)
    server.add("/tin.rss", rss(ITEMS[:1]))
    conf = one_source(tmp_path, store_url, server, f'[websub]\nhub = "{server.url("/hub")}"\n')
    feeds = "https://syn.example.vn/feeds/"
    changed = {f"{feeds}{name}.{fmt}" for name in ("all", "tin-tuc-su-kien", "source-tin") for fmt in FORMATS}
    with serving(conf):
        assert syndication("fetch", config=conf).returncode == 0
        wait_until(lambda: set(pings) == changed, "the pings of a change seen while serving")
    pings.clear()

    server.add("/tin.rss", rss(ITEMS))  # a new article, fetched while nothing serves
    assert syndication("fetch", config=conf).returncode == 0
    hub_status[0] = 503  # and the hub is down at the next start
    server.clear_requests()
    with serving(conf):
        wait_until(lambda: server.hits("/hub") >= 1, "a ping at start")
    assert pings == []

    hub_status[0] = 204
    with serving(conf):
        wait_until(lambda: set(pings) == changed, "the pings the hub refused, sent again")
    assert sorted(pings) == sorted(changed)  # once each
