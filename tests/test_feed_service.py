"""Publishing in one process: feeds built from the real store when articles change."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser
import pytest

from syndication import config
from syndication.core import Syndication
from syndication.store import DocumentTag, Store
from tests.httpserver import Reply, TestServer
from tests.test_core import ITEMS, START, Clock, rss, settings_for, source


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def with_feeds(settings_text_extra: str, tmp_path: Path, store_url: str, sources: str) -> config.Settings:
    settings = settings_for(tmp_path, store_url, sources)
    path = settings.path
    path.write_text(path.read_text(encoding="utf-8") + settings_text_extra, encoding="utf-8")
    return config.load(path, environ={})


def many_items(count: int) -> list[tuple[str, str, str]]:
    return [
        (f"https://portal.example.vn/tin/{n}.html", f"Tin số {n}: Đảng uỷ Khối họp", f"<p>Nội dung {n}</p>")
        for n in range(count)
    ]


def test_feeds_follow_the_store(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS[:1]), etag='"1"')
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))
    clock = Clock()

    async def run() -> None:
        async with Syndication(settings, clock=clock) as syn:
            service = await syn.feed_service()
            names = [spec.name for spec in service.feeds()]
            assert names == ["all", "tin", "xdd", "source-tin"]
            empty = service.cached("all", "rss", 1)
            assert empty is not None
            assert empty.last_modified == START  # when it was first built, not a date of its articles
            assert feedparser.parse(empty.body).entries == []

            await syn.poll()  # a local poll rebuilds at once
            first = service.cached("all", "rss", 1)
            assert first is not None
            assert first.etag != empty.etag
            assert [e.title for e in feedparser.parse(first.body).entries] == [ITEMS[0][1]]
            # The category the source files into changed; the other one did not.
            xdd = service.cached("xdd", "json", 1)
            assert xdd is not None
            assert b'"items": []' in xdd.body or b'"items":[]' in xdd.body

            server.add("/tin.rss", rss(ITEMS), etag='"2"')
            clock.now += timedelta(hours=1)
            await syn.poll()
            second = service.cached("source-tin", "atom", 1)
            assert second is not None
            parsed = feedparser.parse(second.body)
            assert {e.title for e in parsed.entries} == {t for _, t, _ in ITEMS}

            # Nothing new: nothing is rebuilt, the bytes stay the same.
            clock.now += timedelta(hours=1)
            assert await service.refresh() == []
            assert service.cached("source-tin", "atom", 1) == second

    asyncio.run(run())


def test_changes_from_another_process_are_noticed(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS))
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))

    async def run() -> None:
        async with Syndication(settings, clock=Clock()) as publisher:
            service = await publisher.feed_service()
            assert await service.refresh() == []
            # Another Syndication (as `syndication fetch` in another process) ingests.
            async with Syndication(settings, clock=Clock()) as fetcher:
                await fetcher.poll()
            assert await service.refresh() == ["all", "tin", "source-tin"]
            doc = service.cached("tin", "rss", 1)
            assert doc is not None
            assert len(feedparser.parse(doc.body).entries) == 2

    asyncio.run(run())


def test_older_pages_on_demand_and_export(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(many_items(7)))
    settings = with_feeds("[feeds]\nitems = 3\n", tmp_path, store_url, source("tin", server.url("/tin.rss")))

    async def run() -> list[Path]:
        async with Syndication(settings, clock=Clock()) as syn:
            await syn.poll()
            service = await syn.feed_service()
            assert service.cached("all", "rss", 2) is None
            page2 = await service.document("all", "rss", 2)
            page3 = await service.document("all", "json", 3)
            assert await service.document("all", "rss", 4) is None
            assert await service.document("khong-co", "rss", 1) is None
            assert page2 is not None
            assert page3 is not None
            assert service.cached("all", "rss", 2) == page2
            titles = [e.title for e in feedparser.parse(page2.body).entries]
            assert titles == [f"Tin số {n}: Đảng uỷ Khối họp" for n in (3, 4, 5)]
            exported = await service.export(tmp_path / "site")
            served = {
                (d.name, d.format, d.page): d.body
                for d in [service.cached("all", "rss", 1), page2, page3]
                if d is not None
            }
            files = tmp_path / "site" / "feeds"
            assert (files / "all.rss").read_bytes() == served[("all", "rss", 1)]
            assert (files / "all.rss?page=2").read_bytes() == served[("all", "rss", 2)]
            assert (files / "all.json?page=3").read_bytes() == served[("all", "json", 3)]
            return exported

    exported = asyncio.run(run())
    names = {p.name for p in exported}
    assert {"all.atom", "all.atom?page=3", "source-tin.json", "feeds.opml", "feed.xsl"} <= names
    assert "all.rss?page=4" not in names
    # Empty categories still get their page 1.
    assert "xdd.rss" in names


def test_websub_hub_is_pinged_after_a_change(tmp_path: Path, store_url: str, server: TestServer) -> None:
    pings: list[dict[str, list[str]]] = []

    def hub(request: object) -> Reply:
        body = getattr(request, "body", b"")
        pings.append(urllib.parse.parse_qs(body.decode()))
        return Reply(status=204)

    server.handler("/hub", hub)
    server.add("/tin.rss", rss(ITEMS))
    settings = with_feeds(
        f'[websub]\nhub = "{server.url("/hub")}"\n',
        tmp_path,
        store_url,
        source("tin", server.url("/tin.rss")),
    )

    async def run() -> None:
        async with Syndication(settings, clock=Clock(START)) as syn:
            service = await syn.feed_service()
            doc = service.cached("all", "atom", 1)
            assert doc is not None
            assert f'href="{server.url("/hub")}"'.encode() in doc.body
            await syn.poll()

    asyncio.run(run())
    topics = {p["hub.url"][0] for p in pings}
    assert all(p["hub.mode"] == ["publish"] for p in pings)
    base = "https://syn.example.vn/feeds/"
    assert topics == {f"{base}{n}.{f}" for n in ("all", "tin", "source-tin") for f in ("rss", "atom", "json")}


def test_store_stays_the_same_when_nothing_changed(tmp_path: Path, store_url: str) -> None:
    settings = settings_for(tmp_path, store_url, "")
    store = Store(settings.storage.url)
    store.upgrade()
    assert store.content_version() == 0
    assert store.changed_scopes(since=0) == (0, frozenset())
    store.close()


def test_last_modified_is_when_the_bytes_changed_in_any_process(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    """Last-Modified follows the bytes, not the articles' dates: a back-dated article moves
    it, a rebuild to the same bytes does not, and another process (or a restart) answers
    the same date. Two changes within one second are a second apart."""
    server.add("/tin.rss", rss(ITEMS[:1]))
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))
    clock = Clock(START + timedelta(microseconds=250_000))

    async def run() -> None:
        async with Syndication(settings, clock=clock) as syn:
            service = await syn.feed_service()
            await syn.poll()
            first = service.cached("all", "atom", 1)
            assert first is not None
            assert first.last_modified == START + timedelta(seconds=1)  # in the second of the build

            clock.now += timedelta(hours=2)
            late = rss(ITEMS).replace(
                format_datetime(START - timedelta(hours=1)).encode(),
                format_datetime(START - timedelta(days=7)).encode(),
            )
            server.add("/tin.rss", late)
            await syn.poll()
            second = service.cached("all", "atom", 1)
            assert second is not None
            assert second.etag != first.etag
            assert second.last_modified == START + timedelta(hours=2)
            assert service.cached("xdd", "atom", 1).last_modified == START  # type: ignore[union-attr]

            clock.now += timedelta(hours=1)  # another process builds the same bytes later
            async with Syndication(settings, clock=clock) as other:
                again = (await other.feed_service()).cached("all", "atom", 1)
                assert again is not None
                assert (again.etag, again.last_modified) == (second.etag, second.last_modified)
                exported = await (await other.feed_service()).export(tmp_path / "site")
            by_name = {path.name: path for path in exported}
            assert by_name["all.atom"].stat().st_mtime == second.last_modified.timestamp()
            assert by_name["feeds.opml"].stat().st_mtime == START.timestamp()

    asyncio.run(run())


def test_store_dates_documents_and_keeps_pings_due_until_taken(store_url: str) -> None:
    with Store(store_url) as store:
        store.upgrade()
        page1 = DocumentTag(name="all", format="rss", page=1, etag='"a"')
        page2 = DocumentTag(name="all", format="rss", page=2, etag='"b"')
        first = store.record_documents([page1, page2], now=START)
        assert first == {page1: START, page2: START}
        assert store.pending_pings() == []  # never published before: nobody to tell

        later = START + timedelta(minutes=5, microseconds=10)
        changed1, changed2 = replace(page1, etag='"c"'), replace(page2, etag='"d"')
        dates = store.record_documents([changed1, changed2], now=later)
        assert dates == {changed1: START + timedelta(minutes=5), changed2: START + timedelta(minutes=5)}
        assert store.pending_pings() == [changed1]  # only page 1 is a WebSub topic
        # A clock set back: the date still moves forward, by a second.
        third = replace(page1, etag='"e"')
        assert store.record_documents([third], now=START) == {third: START + timedelta(minutes=5, seconds=1)}
        # A ping of the previous bytes does not clear the newer change.
        store.mark_pinged([changed1])
        assert store.pending_pings() == [third]
        store.mark_pinged([third])
        assert store.pending_pings() == []
        assert store.record_documents([third], now=later + timedelta(hours=1)) == {
            third: START + timedelta(minutes=5, seconds=1)
        }
