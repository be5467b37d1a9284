"""Polling end to end in one process: real HTTP server on loopback, real fetcher, real store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from syndication import config
from syndication.core import Syndication
from syndication.store import Store
from syndication.types import FetchRequest, FetchResult, PollResult, SaveCounts
from tests.httpserver import TestServer

DATA = Path(__file__).parent / "data"
START = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def rss(items: list[tuple[str, str, str]], *, ttl: int | None = None, start: datetime = START) -> bytes:
    """A small RSS 2.0 document: (guid, title, body) per item, published ``start`` and an
    hour earlier for each next item. (A test that runs the CLI, on the wall clock, and sends
    digests passes a recent ``start``: a digest bounds what a new install brings.)"""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>',
        "<title>Tin tức - Sự kiện</title><link>https://portal.example.vn/</link>",
    ]
    if ttl is not None:
        parts.append(f"<ttl>{ttl}</ttl>")
    for n, (guid, title, body) in enumerate(items):
        date = format_datetime(start - timedelta(hours=n))
        parts.append(
            f"<item><guid>{guid}</guid><title>{title}</title><link>{guid}</link>"
            f"<description>{title}</description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded><pubDate>{date}</pubDate></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


ITEMS = [
    (
        "https://portal.example.vn/tin/1.html",
        "Hội nghị quán triệt Nghị quyết Trung ương tại Hà Nội",
        "<p>Sáng 27/11, Đảng uỷ Khối tổ chức hội nghị.</p><script>alert(1)</script>",
    ),
    (
        "https://portal.example.vn/tin/2.html",
        "Ủy ban Kiểm tra kiểm tra chi bộ",
        '<p>Ủy ban Kiểm tra làm việc với chi bộ.</p><img src="/anh/2.jpg" onerror="x()">',
    ),
]


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def settings_for(
    tmp_path: Path, store_url: str, sources: str, categories: tuple[str, ...] = ("tin", "xdd")
) -> config.Settings:
    text = '[site]\ntitle = "Thử nghiệm"\nbase_url = "https://syn.example.vn/"\n'
    text += f'[storage]\nurl = "{store_url}"\n[fetch]\nparse_workers = 1\n'
    text += "[service]\njitter = 0\n"  # exact poll times; jitter has its own test
    for slug in categories:
        text += f'[[categories]]\nslug = "{slug}"\ntitle = "{slug}"\n'
    path = tmp_path / "syn.toml"
    path.write_text(text + sources, encoding="utf-8")
    return config.load(path, environ={})


def source(id: str, url: str, *, kind: str = "feed", cats: str = '["tin"]', private: bool = True) -> str:
    return (
        f'[[sources]]\nid = "{id}"\nkind = "{kind}"\nurl = "{url}"\ncategories = {cats}\n'
        f'interval = "15m"\nallow_private_network = {str(private).lower()}\n'
    )


def poll(settings: config.Settings, clock: Clock, ids: list[str] | None = None) -> dict[str, PollResult]:
    async def run() -> list[PollResult]:
        async with Syndication(settings, clock=clock) as syn:
            return await syn.poll(ids)

    return {r.source_id: r for r in asyncio.run(run())}


def stored(settings: config.Settings) -> Store:
    store = Store(settings.storage.url)
    store.upgrade()
    return store


def test_new_then_not_modified_then_updated(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS), etag='"v1"')
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))
    clock = Clock()

    first = poll(settings, clock)["tin"]
    assert (first.status, first.counts.new) == ("new", 2)
    assert first.next_attempt == START + timedelta(minutes=15)

    clock.now += timedelta(minutes=15)
    second = poll(settings, clock)["tin"]
    assert second.status == "not_modified"
    assert server.requests[-1].headers.get("If-None-Match") == '"v1"'

    changed = [ITEMS[0], (ITEMS[1][0], ITEMS[1][1] + " (cập nhật)", ITEMS[1][2])]
    server.add("/tin.rss", rss(changed), etag='"v2"')
    clock.now += timedelta(minutes=15)
    third = poll(settings, clock)["tin"]
    assert (third.status, third.counts.updated, third.counts.unchanged) == ("updated", 1, 1)

    with stored(settings) as store:
        articles = {a.url: a for a in store.list_articles()}
    assert articles[ITEMS[1][0]].title == "Ủy ban Kiểm tra kiểm tra chi bộ (cập nhật)"
    body = articles[ITEMS[0][0]].content_html
    assert "Đảng uỷ Khối" in body
    assert "<script" not in body
    img = articles[ITEMS[1][0]].content_html
    assert 'src="https://portal.example.vn/anh/2.jpg"' in img
    assert "onerror" not in img


def test_broken_source_backs_off_and_harms_nobody(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS))
    server.add("/hong.rss", b"Internal error", status=500, content_type="text/plain")
    settings = settings_for(
        tmp_path, store_url, source("tin", server.url("/tin.rss")) + source("hong", server.url("/hong.rss"))
    )
    clock = Clock()
    results = poll(settings, clock)
    assert results["tin"].status == "new"
    assert results["hong"].status == "error"
    assert "500" in (results["hong"].error or "")
    assert results["hong"].next_attempt == START + timedelta(minutes=15)

    clock.now += timedelta(minutes=15)
    again = poll(settings, clock)["hong"]
    assert again.next_attempt == clock.now + timedelta(minutes=30)

    with stored(settings) as store:
        states = store.source_states()
        assert states["hong"].error_count == 2
        assert states["hong"].last_success is None
        assert "500" in (states["hong"].last_error or "")
        assert states["tin"].error_count == 0
        assert len(store.list_articles()) == 2

    # It recovers: the error count resets and the error is cleared.
    server.add("/hong.rss", rss(ITEMS[:1]))
    clock.now += timedelta(minutes=30)
    assert poll(settings, clock)["hong"].status in ("unchanged", "new")
    with stored(settings) as store:
        state = store.source_states()["hong"]
        assert (state.error_count, state.last_error) == (0, None)


def test_garbage_never_harms_stored_articles(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS), etag='"v1"')
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))
    clock = Clock()
    poll(settings, clock)
    server.add("/tin.rss", b"\x00\xff garbage \xfe not a feed", etag='"v2"', content_type="text/plain")
    clock.now += timedelta(hours=1)
    result = poll(settings, clock)["tin"]
    assert result.status == "error"
    # An empty but valid feed (the source dropped everything) removes nothing either.
    server.add("/tin.rss", rss([]), etag='"v3"')
    clock.now += timedelta(hours=1)
    assert poll(settings, clock)["tin"].status == "unchanged"
    with stored(settings) as store:
        assert sorted(a.title for a in store.list_articles()) == sorted(t for _, t, _ in ITEMS)
        # The validators of the failed poll were not kept: the garbage is not "known".
        assert store.source_states()["tin"].etag == '"v3"'


def test_publisher_hints_push_the_next_poll(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/ttl.rss", rss(ITEMS, ttl=60))
    server.add("/cc.rss", rss(ITEMS), headers={"Cache-Control": "max-age=2700"})
    server.add("/busy.rss", b"busy", status=503, headers={"Retry-After": "7200"}, content_type="text/plain")
    settings = settings_for(
        tmp_path,
        store_url,
        source("ttl", server.url("/ttl.rss"))
        + source("cc", server.url("/cc.rss"), cats='["xdd"]')
        + source("busy", server.url("/busy.rss")),
    )
    results = poll(settings, Clock())
    assert results["ttl"].next_attempt == START + timedelta(hours=1)
    assert results["cc"].next_attempt == START + timedelta(minutes=45)
    assert results["busy"].status == "error"
    assert results["busy"].next_attempt == START + timedelta(hours=2)


def test_same_article_from_two_sources_is_stored_once(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    server.add("/a.rss", rss(ITEMS))
    server.add("/b.rss", rss(ITEMS[:1]))
    settings = settings_for(
        tmp_path,
        store_url,
        source("a", server.url("/a.rss"), cats='["tin"]') + source("b", server.url("/b.rss"), cats='["xdd"]'),
    )
    results = poll(settings, Clock())
    assert results["a"].counts.new + results["b"].counts.new == 2
    with stored(settings) as store:
        by_url = {a.url: a for a in store.list_articles()}
        assert len(by_url) == 2
        assert by_url[ITEMS[0][0]].categories == ("tin", "xdd")
        assert [a.url for a in store.list_articles(category="xdd")] == [ITEMS[0][0]]


def test_internal_address_refused_without_opt_in(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS))
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss"), private=False))
    result = poll(settings, Clock())["tin"]
    assert result.status == "error"
    assert "internal address" in (result.error or "")
    assert not [r for r in server.requests if r.path == "/tin.rss"]


def test_portal_without_feed(tmp_path: Path, store_url: str, server: TestServer) -> None:
    portal = DATA / "portal"
    for page in portal.iterdir():
        server.add(f"/{page.name}", page.read_bytes(), content_type="text/html", etag=f'"{page.name}"')
    settings = settings_for(
        tmp_path, store_url, source("portal", server.url("/xay-dung-dang.html"), kind="html", cats='["xdd"]')
    )
    clock = Clock()
    first = poll(settings, clock)["portal"]
    assert first.status == "new", first
    assert first.counts.new >= 2
    with stored(settings) as store:
        articles = store.list_articles(include_duplicates=True)
    assert all("Các tin khác" not in a.content_html for a in articles)
    assert all(a.categories == ("xdd",) for a in articles)

    clock.now += timedelta(hours=1)
    assert poll(settings, clock)["portal"].status == "not_modified"


def test_failed_article_pages_are_warnings_not_losses(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    links = "".join(f'<h3><a href="/bai-{i}.html">Bài số {i} về công tác Đảng</a></h3>' for i in range(3))
    listing = f"<html><body><h1>Xây dựng Đảng</h1><article>{links}</article></body></html>".encode()
    server.add("/list.html", listing, content_type="text/html")
    page = (DATA / "portal" / "hoi-nghi-quan-triet.html").read_bytes()
    server.add("/bai-0.html", page, content_type="text/html")
    server.add("/bai-1.html", b"gone", status=404, content_type="text/plain")
    settings = settings_for(
        tmp_path, store_url, source("portal", server.url("/list.html"), kind="html", cats='["xdd"]')
    )
    result = poll(settings, Clock())["portal"]
    assert result.status == "new"
    assert result.counts.new == 1
    assert any("404" in w for w in result.warnings)


def test_unknown_source_is_a_clear_error(tmp_path: Path, store_url: str) -> None:
    settings = settings_for(tmp_path, store_url, "")
    from syndication.errors import SyndicationError

    with pytest.raises(SyndicationError, match="unknown source khong-co"):
        poll(replace(settings), Clock(), ["khong-co"])


class FakeFetcher:
    """Serves fixed documents and records the order of fetches."""

    def __init__(self, documents: dict[str, bytes], events: list[str]) -> None:
        self.documents = documents
        self.events = events

    async def fetch(self, request: FetchRequest) -> FetchResult:
        self.events.append(f"fetch {request.url}")
        await asyncio.sleep(0)
        return FetchResult(url=request.url, status=200, content=self.documents[request.url])


class RecordingStore(Store):
    def __init__(self, url: str, events: list[str]) -> None:
        super().__init__(url)
        self.events = events

    def save_articles(self, **kwargs: Any) -> SaveCounts:
        self.events.append(f"save {kwargs['source_id']}")
        return super().save_articles(**kwargs)


def test_a_full_backlog_holds_new_sources_until_saved(tmp_path: Path, store_url: str) -> None:
    """When parsing lags fetching, fetched documents must not pile up in memory."""
    urls = {f"https://portal.example.vn/{n}.rss": rss(ITEMS[n : n + 1]) for n in range(2)}
    a, b = list(urls)
    settings = settings_for(tmp_path, store_url, source("a", a) + source("b", b))

    def run(backlog_bytes: int) -> list[str]:
        events: list[str] = []

        async def go() -> None:
            store = RecordingStore(settings.storage.url, events)
            fetcher = FakeFetcher(urls, events)
            async with Syndication(
                settings, clock=Clock(), store=store, fetcher=fetcher, backlog_bytes=backlog_bytes
            ) as syn:
                await syn.poll()

        asyncio.run(go())
        return events

    # One byte of backlog: the second source starts only after the first one is saved.
    assert run(1) == [f"fetch {a}", "save a", f"fetch {b}", "save b"]
    # Room enough: both are fetched before either is saved.
    assert run(10**8)[:2] == [f"fetch {a}", f"fetch {b}"]


def test_story_republished_elsewhere_is_shown_once(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    body = "".join(
        f"<p>Đoàn giám sát số {n} của Ủy ban Kiểm tra Đảng ủy Khối làm việc với chi bộ cơ sở thứ {n}, "
        f"xem xét việc thực hiện nghị quyết và chương trình công tác quý {n % 4 + 1} năm 2026.</p>"
        for n in range(1, 13)
    )
    original = [("https://portal.example.vn/tin/7.html", "Ủy ban Kiểm tra giám sát chuyên đề", body)]
    # Another portal copies it under its own URL, writes "Uỷ" with the other tone placement,
    # and adds a line of its own.
    copied_body = body.replace("Ủy", "Uỷ") + "<p>Nguồn: portal.example.vn</p>"
    copy = [("https://baokhac.example.org/bai/99", "Uỷ ban Kiểm tra  giám sát chuyên đề", copied_body)]
    server.add("/goc.rss", rss(original))
    server.add("/ban-sao.rss", rss(copy))
    settings = settings_for(
        tmp_path, store_url, source("goc", server.url("/goc.rss")) + source("sao", server.url("/ban-sao.rss"))
    )
    poll(settings, Clock(), ["goc"])
    poll(settings, Clock(START + timedelta(hours=1)), ["sao"])
    with stored(settings) as store:
        shown = store.list_articles()
        everything = store.list_articles(include_duplicates=True)
    assert [a.url for a in shown] == [original[0][0]]
    (dup,) = [a for a in everything if a.url == copy[0][0]]
    assert dup.duplicate_of == shown[0].id


def test_future_dates_become_now(tmp_path: Path, store_url: str, server: TestServer) -> None:
    future = format_datetime(START + timedelta(days=2))
    body = rss(ITEMS[:1]).replace(format_datetime(START).encode(), future.encode())
    assert future.encode() in body
    server.add("/tin.rss", body)
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))
    poll(settings, Clock())
    with stored(settings) as store:
        (article,) = store.list_articles()
    assert article.published == START
