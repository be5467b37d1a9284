"""Publishing in one process: feeds built from the real store when articles change."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest

from syndication import config
from syndication.core import Syndication
from syndication.core.feeds import EMPTY_FEED_DATE
from syndication.store import Store
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
            assert empty.last_modified == EMPTY_FEED_DATE
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
