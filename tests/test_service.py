"""The running service in one process: restarts and catch-up, racing schedulers,
workers that claim polls and deliveries and stop gracefully. Real store (SQLite and
PostgreSQL), real loopback HTTP server for the sources; our fake transport (our seam)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from syndication import config
from syndication.core import Syndication
from syndication.core.service import Worker
from syndication.scheduler import ServiceScheduler, due_run, last_run
from syndication.store import Store
from syndication.types import DigestSpec, SendOutcome, SubscriberData
from tests.httpserver import TestServer
from tests.test_core import ITEMS, Clock, rss, settings_for, source
from tests.test_digests import FakeTransport

T = TypeVar("T")
SAIGON = "Asia/Ho_Chi_Minh"


def saigon(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in Saigon (UTC+7, no DST), as aware UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


# --- when a run is due -------------------------------------------------------------------


def test_last_run_is_the_latest_fire_time_in_the_window() -> None:
    now = saigon(27, 7, 20)
    assert last_run("0 7 * * *", timezone=SAIGON, now=now, within=timedelta(hours=1)) == saigon(27, 7)
    assert last_run("0 7 * * *", timezone=SAIGON, now=now, within=timedelta(minutes=19)) is None
    assert last_run("*/5 * * * *", timezone=SAIGON, now=now, within=timedelta(hours=1)) == saigon(27, 7, 20)
    assert last_run("0 7 * * *", timezone=SAIGON, now=saigon(27, 7), within=timedelta(0)) == saigon(27, 7)


def test_due_run_respects_each_digests_grace() -> None:
    morning = DigestSpec(name="daily", schedule="0 7 * * *", subject="x", grace=timedelta(hours=2))
    assert due_run(morning, timezone=SAIGON, now=saigon(27, 8, 59)) == saigon(27, 7)
    assert due_run(morning, timezone=SAIGON, now=saigon(27, 9, 1)) is None  # not in the afternoon
    assert due_run(morning, timezone=SAIGON, now=saigon(27, 6, 59)) is None  # yesterday's is too old


# --- restarts ----------------------------------------------------------------------------

DIGEST = """
[mail]
from_address = "ban-tin@example.org"
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
grace = "1h"
"""
PEOPLE = [
    SubscriberData(address=f"can-bo-{n}@example.org", display_name=f"Cán bộ số {n}", organisation="Chi bộ 1")
    for n in range(5)
]


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        srv.add("/tin.rss", rss(ITEMS))
        yield srv


def service_settings(tmp_path: Path, store_url: str, server: TestServer, extra: str = "") -> config.Settings:
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))
    path = settings.path
    path.write_text(path.read_text(encoding="utf-8") + DIGEST + extra, encoding="utf-8")
    return config.load(path, environ={})


def with_app(
    settings: config.Settings,
    clock: Clock,
    transport: FakeTransport,
    body: Callable[[Syndication], Awaitable[T]],
) -> T:
    """One start of the service: a fresh ``Syndication`` (a new process, as far as the
    store can tell), closed at the end."""

    async def go() -> T:
        async with Syndication(settings, clock=clock, transport_factory=lambda: transport) as app:
            return await body(app)

    return asyncio.run(go())


async def start_and_send(app: Syndication) -> tuple[list[Any], list[Any], int]:
    """What `syndication run` does at start, then what its worker does: catch up, send."""
    scheduler = ServiceScheduler(app, role="run")
    runs, skipped = await scheduler.catch_up()
    summary = await (await app.digest_service()).send(None)
    return runs, skipped, summary.sent


def test_restart_within_grace_sends_the_missed_run_once(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    settings = service_settings(tmp_path, store_url, server)
    transport = FakeTransport()
    clock = Clock(saigon(27, 6, 30))

    async def before_seven(app: Syndication) -> tuple[list[Any], list[Any], int]:
        await app.upsert_subscribers(PEOPLE)
        await app.poll()
        return await start_and_send(app)

    runs, _, sent = with_app(settings, clock, transport, before_seven)
    assert (runs, sent) == ([], 0)  # stopped before 07:00: nothing due yet

    clock.now = saigon(27, 7, 40)  # back after 07:00, within the hour of grace
    runs, skipped, sent = with_app(settings, clock, transport, start_and_send)
    assert [(r.digest, r.scheduled_for, r.outcome) for r in runs] == [("daily", saigon(27, 7), "planned")]
    assert skipped == []
    assert sent == len(PEOPLE)

    clock.now = saigon(27, 7, 50)  # restarted again, still within grace: nothing twice
    runs, _, sent = with_app(settings, clock, transport, start_and_send)
    assert [r.outcome for r in runs] == ["exists"]
    assert sent == 0

    with Store(settings.storage.url) as store:
        issues = store.list_issues("daily")
        assert [i.scheduled_for for i in issues] == [saigon(27, 7)]
        deliveries = store.get_deliveries(issues[0].id)
    recipients = sorted(r for r, _ in transport.sent)
    assert recipients == sorted(p.address for p in PEOPLE)  # one message per subscriber
    assert len({d.message_id for d in deliveries}) == len(PEOPLE)
    assert all(d.status == "sent" for d in deliveries)


def test_restart_after_grace_skips_the_run_and_the_next_one_carries_its_articles(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    settings = service_settings(tmp_path, store_url, server)
    server.add("/tin.rss", rss(ITEMS[:1]))
    transport = FakeTransport()
    clock = Clock(saigon(26, 6, 30))

    async def day_one(app: Syndication) -> tuple[list[Any], list[Any], int]:
        await app.upsert_subscribers(PEOPLE)
        await app.poll()
        clock.now = saigon(26, 7, 5)
        return await start_and_send(app)

    runs, _, sent = with_app(settings, clock, transport, day_one)
    assert ([r.outcome for r in runs], sent) == (["planned"], len(PEOPLE))

    clock.now = saigon(27, 6, 30)  # a new article arrives, then the service goes down
    server.add("/tin.rss", rss(ITEMS), etag='"v2"')
    assert with_app(settings, clock, transport, lambda app: app.poll())[0].counts.new == 1

    clock.now = saigon(27, 14)  # back in the afternoon: a morning digest must not arrive now
    transport.sent.clear()
    runs, skipped, sent = with_app(settings, clock, transport, start_and_send)
    assert (runs, sent) == ([], 0)
    assert [(s.digest, s.scheduled_for) for s in skipped] == [("daily", saigon(27, 7))]

    clock.now = saigon(28, 7, 5)  # the next morning's run holds the article of the skipped one
    runs, skipped, sent = with_app(settings, clock, transport, start_and_send)
    assert [(r.scheduled_for, r.outcome, r.recipients) for r in runs] == [(saigon(28, 7), "planned", 5)]
    assert skipped == []  # the run missed yesterday is older than the latest issue: not logged again
    assert sent == len(PEOPLE)
    html = transport.parsed()[0].get_body(("html",)).get_content()
    assert ITEMS[1][1] in html  # first seen on the 27th, skipped then, delivered now
    assert ITEMS[0][1] not in html  # delivered on the 26th
    with Store(settings.storage.url) as store:
        assert [i.scheduled_for for i in store.list_issues("daily")] == [saigon(28, 7), saigon(26, 7)]


def test_two_schedulers_racing_make_one_issue(tmp_path: Path, store_url: str, server: TestServer) -> None:
    settings = service_settings(tmp_path, store_url, server)
    transport = FakeTransport()
    clock = Clock(saigon(27, 6, 30))

    async def prepare(app: Syndication) -> None:
        await app.upsert_subscribers(PEOPLE)
        await app.poll()

    with_app(settings, clock, transport, prepare)
    clock.now = saigon(27, 7)

    async def race() -> list[str]:
        async with (
            Syndication(settings, clock=clock, transport_factory=lambda: transport) as one,
            Syndication(settings, clock=clock, transport_factory=lambda: transport) as two,
        ):
            runs = await asyncio.gather(
                one.run_digest("daily", saigon(27, 7)), two.run_digest("daily", saigon(27, 7))
            )
            await asyncio.gather(
                (await one.digest_service()).send(None), (await two.digest_service()).send(None)
            )
            return sorted(r.outcome for r in runs)

    outcomes = asyncio.run(race())
    assert outcomes in (["exists", "planned"], ["planned", "planned"])
    with Store(settings.storage.url) as store:
        issues = store.list_issues("daily")
        assert len(issues) == 1
        assert len(store.get_deliveries(issues[0].id)) == len(PEOPLE)
    assert sorted(r for r, _ in transport.sent) == sorted(p.address for p in PEOPLE)


def test_an_issue_cut_short_while_planning_is_completed(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    settings = service_settings(tmp_path, store_url, server)
    transport = FakeTransport()
    clock = Clock(saigon(27, 7))

    async def crash_after_creating(app: Syndication) -> None:
        await app.upsert_subscribers(PEOPLE)
        await app.poll()
        await app.start()
        app.store.create_issue("daily", saigon(27, 7), now=clock())  # the outbox was never written

    with_app(settings, clock, transport, crash_after_creating)
    clock.now = saigon(27, 7, 10)
    runs, _, sent = with_app(settings, clock, transport, start_and_send)
    assert [r.outcome for r in runs] == ["planned"]
    assert sent == len(PEOPLE)


# --- workers -----------------------------------------------------------------------------


class SlowTransport(FakeTransport):
    """Takes a while per message, so that a stop arrives part-way."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.in_flight = 0

    async def send(self, *, sender: str, recipient: str, data: bytes) -> SendOutcome:
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
            return await super().send(sender=sender, recipient=recipient, data=data)
        finally:
            self.in_flight -= 1


def test_worker_stops_gracefully_and_gives_back_what_it_did_not_start(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    settings = service_settings(tmp_path, store_url, server)
    people = [SubscriberData(address=f"nguoi-{n}@example.org") for n in range(60)]
    transport = SlowTransport(0.05)
    clock = Clock(saigon(27, 7))

    async def go() -> tuple[int, Worker]:
        async with Syndication(settings, clock=clock, transport_factory=lambda: transport) as app:
            await app.upsert_subscribers(people)
            await app.poll()
            await app.run_digest("daily", saigon(27, 7))
            worker = Worker(app, polls=False)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            while len(transport.sent) < 10:
                await asyncio.sleep(0.01)
            stop.set()
            await task
            return transport.in_flight, worker

    in_flight, worker = asyncio.run(go())
    assert in_flight == 0  # the transactions in flight finished
    sent = len(transport.sent)
    assert 10 <= sent < len(people)
    with Store(settings.storage.url) as store:
        deliveries = store.get_deliveries(store.list_issues("daily")[0].id)
    statuses = [d.status for d in deliveries]
    assert statuses.count("sent") == sent == worker.sent
    # Nothing is left leased: the rest is pending again, due at once for any worker.
    assert statuses.count("pending") == len(people) - sent
    assert "sending" not in statuses
    assert all(d.attempts == 0 for d in deliveries if d.status == "pending")

    # Another start sends the rest, and only the rest.
    async def resume() -> int:
        async with Syndication(settings, clock=clock, transport_factory=lambda: transport) as app:
            return (await (await app.digest_service()).send(None)).sent

    assert asyncio.run(resume()) == len(people) - sent
    assert sorted(r for r, _ in transport.sent) == sorted(p.address for p in people)


def test_worker_polls_due_sources_and_records_their_next_poll(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    server.add("/xdd.rss", rss(ITEMS[:1]))
    settings = settings_for(
        tmp_path,
        store_url,
        source("tin", server.url("/tin.rss")) + source("xdd", server.url("/xdd.rss")),
    )
    clock = Clock(saigon(27, 7))

    async def go() -> tuple[int, list[str]]:
        async with Syndication(settings, clock=clock) as app:
            worker = Worker(app, deliveries=False)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            while worker.polled < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # nothing else is due: no more polls
            stop.set()
            await task
            return worker.polled, await app.claim_sources(limit=10)

    polled, claimable = asyncio.run(go())
    assert polled == 2
    assert claimable == []  # both polled, next poll in 15 minutes
    assert server.hits("/tin.rss") == 1
    assert server.hits("/xdd.rss") == 1
    with Store(settings.storage.url) as store:
        states = store.source_states()
    assert {s.next_attempt for s in states.values()} == {saigon(27, 7, 15)}
    assert all(s.article_count for s in states.values())


def test_poll_times_are_spread_by_jitter(tmp_path: Path, store_url: str, server: TestServer) -> None:
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))
    path = settings.path
    path.write_text(path.read_text(encoding="utf-8").replace("jitter = 0", "jitter = 0.2"), encoding="utf-8")
    settings = config.load(path, environ={})
    clock = Clock(saigon(27, 7))

    async def go(draw: float) -> datetime | None:
        async with Syndication(settings, clock=clock, jitter=lambda: draw) as app:
            [result] = await app.poll()
            return result.next_attempt

    # A 15-minute interval, moved by up to a fifth of it: 0.5 of that is 90 s.
    assert asyncio.run(go(0.5)) == saigon(27, 7, 16) + timedelta(seconds=30)
    server.add("/tin.rss", rss(ITEMS), etag='"v2"')
    assert asyncio.run(go(0.0)) == saigon(27, 7, 15)


def test_articles_older_than_retention_are_not_stored(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))
    path = settings.path
    path.write_text(path.read_text(encoding="utf-8") + '[retention]\narticles = "30d"\n', encoding="utf-8")
    settings = config.load(path, environ={})
    # ITEMS are dated on 27 November (and an hour before): 30 days later the second is too old.
    published_first = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    clock = Clock(published_first + timedelta(days=30) - timedelta(minutes=30))

    async def go() -> tuple[int, list[str]]:
        async with Syndication(settings, clock=clock) as app:
            [result] = await app.poll()
            return result.counts.new, [a.title for a in await app.articles()]

    new, titles = asyncio.run(go())
    assert (new, titles) == (1, [ITEMS[0][1]])


def test_a_slow_sender_keeps_its_leases_so_no_one_sends_its_rows_twice(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    # The lease (1 s) is shorter than the batch takes to send (100 messages, 0.1 s each, 8
    # at a time: about 1.3 s): without renewing it, the second sender would take rows the
    # first is still sending.
    base = service_settings(tmp_path, store_url, server).path
    base.write_text(
        base.read_text(encoding="utf-8").replace("[mail]\n", '[mail]\nlease = "1s"\n'), encoding="utf-8"
    )
    settings = config.load(base, environ={})
    people = [SubscriberData(address=f"nguoi-{n}@example.org") for n in range(100)]
    slow = SlowTransport(0.1)
    other = FakeTransport()
    clock_now = [saigon(27, 7)]

    def clock() -> datetime:
        return clock_now[0]

    async def go() -> int:
        async with (
            Syndication(settings, clock=clock, transport_factory=lambda: slow) as first,
            Syndication(settings, clock=clock, transport_factory=lambda: other) as second,
        ):
            await first.upsert_subscribers(people)
            await first.poll()
            await first.run_digest("daily", saigon(27, 7))
            sending = asyncio.create_task((await first.digest_service()).send(None))
            tries = 0
            while not sending.done():
                await asyncio.sleep(0.2)
                clock_now[0] += timedelta(seconds=0.2)  # the clock moves with the work
                await (await second.digest_service()).send(None)
                tries += 1
            await sending
            return tries

    tries = asyncio.run(go())
    assert tries >= 5  # the second sender kept trying past the first lease's end
    assert other.sent == []  # and never got a row the first was still sending
    assert sorted(r for r, _ in slow.sent) == sorted(p.address for p in people)
