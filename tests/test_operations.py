"""The health check and the metrics snapshot of ``Syndication``, on the real store and a
real poll over loopback HTTP; the poll counters as ``Syndication.poll`` feeds them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syndication.core import Syndication, operations
from syndication.core.operations import HEARTBEAT_MAX_AGE, OperationsService
from syndication.errors import StoreError
from syndication.store import Store
from syndication.types import HealthReport, MetricsSnapshot, SubscriberData
from tests.httpserver import TestServer
from tests.test_core import ITEMS, START, Clock, rss, settings_for, source

R = TypeVar("R")


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def two_sources(tmp_path: Path, store_url: str, server: TestServer) -> Syndication:
    server.add("/tin.rss", rss(ITEMS), etag='"v1"')
    server.add("/hong.rss", b"gone", status=404, content_type="text/plain")
    settings = settings_for(
        tmp_path,
        store_url,
        source("tin", server.url("/tin.rss")) + source("hong", server.url("/hong.rss")),
    )
    return Syndication(settings, clock=Clock())


def test_health_before_and_after_a_poll(tmp_path: Path, store_url: str, server: TestServer) -> None:
    async def run() -> tuple[HealthReport, HealthReport, HealthReport]:
        async with two_sources(tmp_path, store_url, server) as syn:
            await syn.start()
            before = await syn.health()
            await syn.poll()
            clock = syn.clock
            assert isinstance(clock, Clock)
            clock.now += timedelta(minutes=7)
            after = await syn.health()
            clock.now += timedelta(minutes=1)
            await syn.poll(["hong"])  # a failure does not count as a successful poll
            return before, after, await syn.health()

    before, after, failed_again = asyncio.run(run())
    assert before.ok
    assert (before.store_ok, before.scheduler, before.scheduler_age) == (True, "absent", None)
    assert before.last_poll_age is None  # never polled
    assert before.checked == START
    assert after.ok
    assert after.last_poll_age == timedelta(minutes=7)
    assert failed_again.last_poll_age == timedelta(minutes=8)
    assert (before.sources, before.sources_failing, before.degraded) == (2, 0, False)
    assert (after.sources, after.sources_failing, after.degraded) == (2, 1, False)


def test_health_is_degraded_when_every_source_fails(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    async def run() -> tuple[HealthReport, HealthReport]:
        async with two_sources(tmp_path, store_url, server) as syn:
            server.add("/tin.rss", b"", status=500, content_type="text/plain")
            await syn.poll()
            failing = await syn.health()
            server.add("/tin.rss", rss(ITEMS))
            await syn.poll(["tin"])
            return failing, await syn.health()

    failing, recovered = asyncio.run(run())
    assert failing.ok  # the service itself works: it is degraded, not down
    assert (failing.degraded, failing.sources, failing.sources_failing) == (True, 2, 2)
    assert (recovered.degraded, recovered.sources_failing) == (False, 1)


def test_scheduler_alive_or_stale_by_its_heartbeat(tmp_path: Path, store_url: str) -> None:
    settings = settings_for(tmp_path, store_url, "")

    async def run() -> list[HealthReport]:
        async with Syndication(settings, clock=Clock()) as syn:
            await syn.start()
            return [
                await syn.health(scheduler_heartbeat=START - timedelta(seconds=5)),
                await syn.health(scheduler_heartbeat=START - HEARTBEAT_MAX_AGE),
                await syn.health(scheduler_heartbeat=START - HEARTBEAT_MAX_AGE - timedelta(seconds=1)),
                await syn.health(
                    scheduler_heartbeat=START - timedelta(minutes=3), heartbeat_max_age=timedelta(minutes=5)
                ),
            ]

    fresh, edge, stale, lenient = asyncio.run(run())
    assert (fresh.ok, fresh.scheduler, fresh.scheduler_age) == (True, "alive", timedelta(seconds=5))
    assert (edge.ok, edge.scheduler) == (True, "alive")
    assert (stale.ok, stale.scheduler, stale.store_ok) == (False, "stale", True)
    assert (lenient.ok, lenient.scheduler) == (True, "alive")


def test_health_reports_a_failing_store_without_raising(tmp_path: Path, store_url: str) -> None:
    settings = settings_for(tmp_path, store_url, "")
    store = Store(store_url)
    store.close()  # every call now fails with StoreError, as with a database that went away

    async def run() -> HealthReport:
        async with Syndication(settings, clock=Clock(), store=store) as syn:
            return await syn.health(scheduler_heartbeat=START)

    report = asyncio.run(run())
    assert (report.ok, report.store_ok, report.scheduler, report.last_poll_age) == (
        False,
        False,
        "alive",
        None,
    )


def test_snapshot_and_poll_counters(tmp_path: Path, store_url: str, server: TestServer) -> None:
    async def run() -> tuple[MetricsSnapshot, bytes]:
        async with two_sources(tmp_path, store_url, server) as syn:
            await syn.poll()
            await syn.poll(["tin"])
            await syn.upsert_subscribers(
                [
                    SubscriberData(address="bi-thu@example.vn", display_name="Nguyễn Văn An"),
                    SubscriberData(address="pho-bi-thu@example.vn", status="pending"),
                ]
            )
            snapshot = await syn.metrics_snapshot()
            return snapshot, syn.metrics.render(snapshot)

    snapshot, text = asyncio.run(run())
    assert snapshot.articles == 2
    assert snapshot.subscribers == {"pending": 1, "active": 1, "unsubscribed": 0, "bounced": 0}
    assert snapshot.deliveries == {
        "pending": 0,
        "sending": 0,
        "sent": 0,
        "retrying": 0,
        "failed": 0,
        "superseded": 0,
    }
    assert [(s.id, s.error_count, s.last_success) for s in snapshot.sources] == [
        ("tin", 0, START),
        ("hong", 1, None),
    ]
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    assert found[("syndication_polls_total", (("result", "new"), ("source", "tin")))] == 1
    assert found[("syndication_polls_total", (("result", "not_modified"), ("source", "tin")))] == 1
    assert found[("syndication_polls_total", (("result", "error"), ("source", "hong")))] == 1
    assert found[("syndication_articles_ingested_total", (("source", "tin"),))] == 2
    assert found[("syndication_source_consecutive_errors", (("source", "hong"),))] == 1
    assert found[("syndication_articles", ())] == 2


def test_sources_no_longer_configured_are_left_out(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    async def first() -> None:
        async with two_sources(tmp_path, store_url, server) as syn:
            await syn.poll()

    asyncio.run(first())
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss")))

    async def second() -> MetricsSnapshot:
        async with Syndication(settings, clock=Clock()) as syn:
            return await syn.metrics_snapshot()

    assert [s.id for s in asyncio.run(second()).sources] == ["tin"]


def test_operations_service_renders_without_the_store(tmp_path: Path, store_url: str) -> None:
    settings = settings_for(tmp_path, store_url, "")
    store = Store(store_url)
    store.close()

    async def run() -> tuple[bytes, HealthReport]:
        async with Syndication(settings, clock=Clock(), store=store) as syn:
            ops = OperationsService(metrics=syn.metrics, health=syn.health, snapshot=syn.metrics_snapshot)
            ops.observe_feed_request(304)
            with pytest.raises(StoreError):
                await syn.metrics_snapshot()
            return await ops.metrics(), await ops.health()

    text, report = asyncio.run(run())
    assert b"syndication_store_up 0.0" in text
    assert b'syndication_feed_requests_total{status="304"} 1.0' in text
    assert not report.ok


def test_a_store_that_does_not_answer_in_time_fails_the_check(tmp_path: Path, store_url: str) -> None:
    """The store's thread is busy (a long write, a hung connection): the probe still answers."""

    async def never(fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def run() -> HealthReport:
        with Store(store_url) as store:
            return await operations.health(
                db=never,
                store=store,
                clock=Clock(),
                source_ids=["tin"],
                scheduler_heartbeat=None,
                timeout=0.05,
            )

    report = asyncio.run(run())
    assert (report.ok, report.store_ok, report.scheduler) == (False, False, "absent")


def test_health_checks_at_once_share_one_look_at_the_store() -> None:
    calls: list[int] = []
    release = asyncio.Event()

    async def check() -> int:
        calls.append(len(calls))
        await release.wait()
        return len(calls)

    async def run() -> list[int]:
        shared = operations.Shared(check)
        waiting = [asyncio.ensure_future(shared()) for _ in range(5)]
        await asyncio.sleep(0)
        waiting[0].cancel()  # a client that went away: the others still get the answer
        await asyncio.sleep(0)
        release.set()
        answers = [await w for w in waiting[1:]]
        return [*answers, await shared()]  # max_age 0: a later call asks again

    assert asyncio.run(run()) == [1, 1, 1, 1, 2]
    assert calls == [0, 1]


def test_a_failure_is_not_reused() -> None:
    outcomes: list[BaseException | str] = [StoreError("down"), "ok"]

    async def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def run() -> str:
        shared = operations.Shared(call, max_age=60, clock=lambda: 0.0)
        with pytest.raises(StoreError):
            await shared()
        return await shared() + await shared()

    assert asyncio.run(run()) == "okok"
    assert outcomes == []


@pytest.mark.parametrize(
    ("silent", "tick", "lost"),
    [
        (timedelta(0), timedelta(seconds=5), False),
        (HEARTBEAT_MAX_AGE, timedelta(seconds=5), False),  # at the limit: still heard from
        (HEARTBEAT_MAX_AGE + timedelta(seconds=1), timedelta(seconds=5), True),
        (timedelta(minutes=10), timedelta(seconds=5), True),
        # A slow tick: three missed beats, not the two minutes, make it lost.
        (timedelta(minutes=5), timedelta(minutes=2), False),
        (timedelta(minutes=6, seconds=1), timedelta(minutes=2), True),
        (-timedelta(minutes=1), timedelta(seconds=5), False),  # a clock behind another machine's
    ],
)
def test_a_process_is_lost_when_its_heartbeats_stop(silent: timedelta, tick: timedelta, lost: bool) -> None:
    assert operations.node_lost(START - silent, now=START, tick=tick) is lost


def test_nodes_report_the_lost_ones_and_a_heartbeat_forgets_them_after_a_day(
    tmp_path: Path, store_url: str
) -> None:
    settings = settings_for(tmp_path, store_url, "")
    clock = Clock(START)

    async def run() -> tuple[list[tuple[str, bool]], list[str]]:
        async with Syndication(settings, clock=clock) as syn:
            await syn.start()
            syn.store.heartbeat(owner="may-2:7", role="worker", started=START, now=START - timedelta(hours=3))
            syn.store.heartbeat(owner="may-3:9", role="worker", started=START, now=START - timedelta(days=2))
            reported = [(r.node.owner, r.lost) for r in await syn.nodes()]
            await syn.heartbeat("run", START)
            return reported, [r.node.owner for r in await syn.nodes()]

    reported, after = asyncio.run(run())
    assert sorted(reported) == [("may-2:7", True), ("may-3:9", True)]
    assert "may-3:9" not in after
    assert "may-2:7" in after
