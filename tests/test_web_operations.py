"""``/healthz`` and ``/metrics`` over real HTTP: uvicorn on a loopback port, the real
``Syndication`` and store behind ``OperationsService``, the fake feed provider of
``test_web`` in front (the feed files are what ``/metrics`` counts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syndication.core import Syndication
from syndication.core.operations import HEARTBEAT_MAX_AGE, OperationsService
from syndication.metrics import CONTENT_TYPE
from syndication.store import Store
from syndication.types import HealthReport, MetricsSnapshot
from syndication.web.app import Operations, create_app
from tests.test_core import START, Clock, settings_for
from tests.test_web import TEMPLATES, FakeProvider
from tests.webserver import AppServer

MakeClient = Callable[..., httpx.Client]


@pytest.fixture
def serve(tmp_path: Path, store_url: str) -> Iterator[MakeClient]:
    """``serve(heartbeat=None, store=None)``: a client of the app over a fresh ``Syndication``
    whose health check sees ``heartbeat`` (None: no scheduler in this process)."""
    opened: list[tuple[AppServer, httpx.Client, Syndication]] = []

    def make(
        heartbeat: datetime | None = None,
        store: Store | None = None,
        snapshots: list[MetricsSnapshot] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> httpx.Client:
        syn = Syndication(settings_for(tmp_path, store_url, ""), clock=Clock(), store=store)
        if store is None:
            asyncio.run(syn.start())

        async def health() -> HealthReport:
            return await syn.health(scheduler_heartbeat=heartbeat)

        async def snapshot() -> MetricsSnapshot:
            taken = await syn.metrics_snapshot()
            if snapshots is not None:
                snapshots.append(taken)  # one more read of the store
            return taken

        operations = OperationsService(metrics=syn.metrics, health=health, snapshot=snapshot, clock=clock)
        app = create_app(FakeProvider(), templates_dir=TEMPLATES, operations=_is_operations(operations))
        server = AppServer(app).start()
        client = httpx.Client(base_url=server.base_url, headers={"Accept-Encoding": "identity"})
        opened.append((server, client, syn))
        return client

    yield make
    for server, client, syn in opened:
        client.close()
        server.stop()
        asyncio.run(syn.aclose())


def _is_operations(operations: OperationsService) -> Operations:
    return operations  # mypy checks here that core's service keeps to web's Protocol


def test_healthz_is_ok_with_a_working_store(serve: MakeClient) -> None:
    client = serve(heartbeat=START - timedelta(seconds=30))
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "store": "ok",
        "scheduler": "alive",
        "scheduler_age_seconds": 30.0,
        "last_poll_age_seconds": None,
        "sources": 0,
        "sources_failing": 0,
        "checked": "2026-11-27T01:30:00Z",
    }
    assert client.head("/healthz").status_code == 200


def test_healthz_without_a_scheduler(serve: MakeClient) -> None:
    body = serve().get("/healthz").json()
    assert (body["status"], body["scheduler"], body["scheduler_age_seconds"]) == ("ok", "absent", None)


def test_healthz_is_503_when_the_scheduler_heartbeat_is_stale(serve: MakeClient) -> None:
    client = serve(heartbeat=START - HEARTBEAT_MAX_AGE - timedelta(seconds=1))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["status"], body["store"], body["scheduler"]) == ("fail", "ok", "stale")


def test_healthz_is_503_when_the_store_fails(serve: MakeClient, store_url: str) -> None:
    store = Store(store_url)
    store.close()
    response = serve(store=store).get("/healthz")
    assert response.status_code == 503
    assert (response.json()["status"], response.json()["store"]) == ("fail", "fail")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_feed_requests_by_status(serve: MakeClient) -> None:
    client = serve()
    first = client.get("/feeds/all.rss")
    assert first.status_code == 200
    again = client.get("/feeds/all.rss", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/feeds/khong-co.rss").status_code == 404
    assert client.get("/feeds/all/").status_code == 200  # a page for people, not a feed file

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert response.headers["cache-control"] == "no-store"
    found = samples(response.text)
    assert found[("syndication_feed_requests_total", (("status", "200"),))] == 1
    assert found[("syndication_feed_requests_total", (("status", "304"),))] == 1
    assert found[("syndication_feed_requests_total", (("status", "404"),))] == 1
    assert found[("syndication_store_up", ())] == 1
    assert found[("syndication_articles", ())] == 0
    assert found[("syndication_deliveries", (("status", "sent"),))] == 0

    # Scraping is not a feed request, and each scrape is fresh.
    assert (
        samples(client.get("/metrics").text)[("syndication_feed_requests_total", (("status", "200"),))] == 1
    )


def test_metrics_still_answer_when_the_store_fails(serve: MakeClient, store_url: str) -> None:
    store = Store(store_url)
    store.close()
    client = serve(store=store)
    assert client.get("/feeds/all.rss").status_code == 200  # from memory: no store needed
    response = client.get("/metrics")
    assert response.status_code == 200
    found = samples(response.text)
    assert found[("syndication_store_up", ())] == 0
    assert found[("syndication_feed_requests_total", (("status", "200"),))] == 1


def test_the_stores_totals_are_read_at_most_once_in_five_seconds(serve: MakeClient) -> None:
    """On the public port ``/metrics`` is anyone's to ask: a flood must not reach the store."""
    now = [1000.0]
    reads: list[MetricsSnapshot] = []
    client = serve(snapshots=reads, clock=lambda: now[0])
    for _ in range(5):
        assert samples(client.get("/metrics").text)[("syndication_store_up", ())] == 1
    assert len(reads) == 1
    assert client.get("/feeds/all.rss").status_code == 200
    counted = samples(client.get("/metrics").text)  # the counters are this scrape's
    assert counted[("syndication_feed_requests_total", (("status", "200"),))] == 1
    now[0] += 4.9
    client.get("/metrics")
    assert len(reads) == 1
    now[0] += 0.1
    client.get("/metrics")
    assert len(reads) == 2
    now[0] -= 3600  # a clock set back does not keep an old answer for an hour
    client.get("/metrics")
    assert len(reads) == 3


def test_without_operations_there_are_no_such_routes() -> None:
    with AppServer(create_app(FakeProvider(), templates_dir=TEMPLATES)) as server:
        assert httpx.get(server.url("/healthz")).status_code == 404
        assert httpx.get(server.url("/metrics")).status_code == 404
