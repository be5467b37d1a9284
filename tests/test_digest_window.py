"""What a digest reaches back to, in one process with an injected clock: a new install and a
source added to a running site contribute only what was published within the digest's
period; an article found late goes out once. Real store, real HTTP sources on loopback,
our fake transport."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from syndication import config
from syndication.core import Syndication
from syndication.types import SubscriberData
from tests.httpserver import TestServer
from tests.test_core import START, Clock, settings_for, source
from tests.test_digests import DIGESTS, FakeTransport

DAY = timedelta(days=1)
READER = SubscriberData(address="bi-thu@chibo-vanphong.example.org", display_name="Nguyễn Thị Hoà")

Item = tuple[str, str, datetime | None]
"""(slug, title, published); None: the source gives no date."""


def feed(items: list[Item]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
        "<title>Tin</title><link>https://portal.example.vn/</link>",
    ]
    for slug, title, published in items:
        date = "" if published is None else f"<pubDate>{format_datetime(published)}</pubDate>"
        parts.append(
            f"<item><guid>https://portal.example.vn/{slug}.html</guid><title>{title}</title>"
            f"<link>https://portal.example.vn/{slug}.html</link><description>{title}.</description>{date}</item>"
        )
    return "".join([*parts, "</channel></rss>"]).encode()


def backlog(prefix: str, until: datetime, days: int = 21) -> list[Item]:
    """One article a day for three weeks, the newest at ``until`` minus a day and an hour."""
    return [
        (f"{prefix}-{n}", f"{prefix}: tin cũ số {n:02d}", until - timedelta(days=n, hours=1))
        for n in range(1, days)
    ]


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def site(tmp_path: Path, store_url: str, server: TestServer, *ids: str) -> config.Settings:
    sources = "".join(source(i, server.url(f"/{i}.rss")) for i in ids)
    settings = settings_for(tmp_path, store_url, sources)
    settings.path.write_text(settings.path.read_text(encoding="utf-8") + DIGESTS, encoding="utf-8")
    return config.load(settings.path, environ={})


def digest(settings: config.Settings, clock: Clock, *, subscribe: bool = False) -> list[str]:
    """Poll (at the clock), then run the daily digest half an hour later; the plain text of
    each message sent."""
    transport = FakeTransport()

    async def go() -> None:
        async with Syndication(settings, clock=clock, transport_factory=lambda: transport) as syn:
            if subscribe:
                await syn.upsert_subscribers([READER])
            await syn.poll()
            clock.now += timedelta(minutes=30)
            service = await syn.digest_service()
            await service.send((await service.plan("daily")).issue)

    asyncio.run(go())
    return [message.get_body(("plain",)).get_content() for message in transport.parsed()]


def titles(items: list[Item], messages: list[str]) -> set[str]:
    """The titles of ``items`` in the one message sent (none when nothing was sent)."""
    assert len(messages) <= 1, messages
    return {title for _, title, _ in items if messages and title in messages[0]}


def test_a_new_install_sends_a_day_not_three_weeks(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    now = START
    fresh: list[Item] = [("moi", "Tin mới: hội nghị sáng nay", now - timedelta(hours=3))]
    undated: list[Item] = [("khong-ngay", "Tin không ghi ngày", None)]
    future: list[Item] = [("tuong-lai", "Tin ghi nhầm ngày tương lai", now + timedelta(days=2))]
    old = backlog("cu", now)
    server.add("/tin.rss", feed(fresh + undated + future + old))
    settings = site(tmp_path, store_url, server, "tin")

    sent = digest(settings, Clock(now), subscribe=True)
    # Within the day before the digest: the fresh one; without a trustworthy date, the
    # time we first saw it counts (just now).
    assert titles(fresh + undated + future + old, sent) == {
        "Tin mới: hội nghị sáng nay",
        "Tin không ghi ngày",
        "Tin ghi nhầm ngày tương lai",
    }


def test_a_source_added_to_a_running_site_brings_its_recent_articles_only(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    day1 = START
    first: list[Item] = [("a-1", "Tin nguồn A hôm qua", day1 - timedelta(hours=2))]
    server.add("/a.rss", feed(first))
    clock = Clock(day1)
    assert titles(first, digest(site(tmp_path, store_url, server, "a"), clock, subscribe=True)) == {
        first[0][1]
    }

    # A day later a second source is configured, with three weeks of articles behind it;
    # source A, known for long, lists an article dated three days ago (found only now).
    day2 = day1 + DAY
    clock.now = day2 - timedelta(hours=1)
    late: list[Item] = [("a-tre", "Tin nguồn A đăng muộn", day2 - timedelta(days=3))]
    fresh: list[Item] = [("b-moi", "Tin nguồn B sáng nay", day2 - timedelta(hours=2))]
    old = backlog("b", day2)
    server.add("/a.rss", feed(first + late))
    server.add("/b.rss", feed(fresh + old))
    both = site(tmp_path, store_url, server, "a", "b")
    sent = digest(both, clock)
    assert titles(first + late + fresh + old, sent) == {"Tin nguồn A đăng muộn", "Tin nguồn B sáng nay"}

    # The next day: nothing new, nothing again.
    clock.now = day2 + DAY - timedelta(hours=1)
    assert digest(both, clock) == []


def test_an_article_dated_yesterday_first_seen_today_goes_out_once(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    day1 = START
    first: list[Item] = [("hom-qua-1", "Tin hôm qua", day1 - timedelta(hours=1))]
    server.add("/tin.rss", feed(first))
    settings = site(tmp_path, store_url, server, "tin")
    clock = Clock(day1)
    assert titles(first, digest(settings, clock, subscribe=True)) == {"Tin hôm qua"}

    # Published yesterday an hour after that digest, listed by the source only this morning.
    day2 = day1 + DAY
    yesterday: list[Item] = [("muon", "Tin ngày hôm qua, đưa lên sáng nay", day1 + timedelta(hours=1))]
    server.add("/tin.rss", feed(first + yesterday))
    clock.now = day2 - timedelta(hours=1)
    assert titles(yesterday, digest(settings, clock)) == {"Tin ngày hôm qua, đưa lên sáng nay"}
    clock.now = day2 + DAY - timedelta(hours=1)
    assert digest(settings, clock) == []  # not again tomorrow
