"""``Metrics``: what it renders, read back with prometheus_client's own parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syndication import __version__
from syndication.metrics import CONTENT_TYPE, SEND_BUCKETS, Metrics
from syndication.types import MetricsSnapshot, SourceState

LAST_SUCCESS = datetime(2026, 11, 27, 1, 30, 15, tzinfo=UTC)
ODD_ID = 'nguồn "lạ"\\mới\nxuống dòng'
"""Label values are escaped by the library; any configured id must survive the round trip."""


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode("utf-8"))
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def snapshot(**changes: object) -> MetricsSnapshot:
    values: dict[str, object] = {
        "deliveries": {"pending": 3, "sending": 0, "sent": 120, "retrying": 2, "failed": 1},
        "subscribers": {"pending": 1, "active": 40, "unsubscribed": 2, "bounced": 0},
        "articles": 987,
        "sources": (
            SourceState(
                id="baochinhphu", url="https://a/", kind="feed", error_count=0, last_success=LAST_SUCCESS
            ),
            SourceState(id=ODD_ID, url="https://b/", kind="html", error_count=4),
        ),
    }
    values.update(changes)
    return MetricsSnapshot(**values)  # type: ignore[arg-type]


def test_counters_count_what_was_observed() -> None:
    metrics = Metrics()
    metrics.observe_poll("baochinhphu", "new", 5)
    metrics.observe_poll("baochinhphu", "new", 2)
    metrics.observe_poll("baochinhphu", "not_modified", 0)
    metrics.observe_poll(ODD_ID, "error", 0)
    for status in (200, 200, 304, 404):
        metrics.observe_feed_request(status)
    metrics.observe_send("sent", 0.003)
    metrics.observe_send("sent", 0.2)
    metrics.observe_send("retry", 31.0)

    found = samples(metrics.render(snapshot()))

    assert value(found, "syndication_polls_total", source="baochinhphu", result="new") == 2
    assert value(found, "syndication_polls_total", source="baochinhphu", result="not_modified") == 1
    assert value(found, "syndication_polls_total", source=ODD_ID, result="error") == 1
    assert ("syndication_polls_total", frozenset({("source", ODD_ID), ("result", "new")})) not in found
    assert value(found, "syndication_articles_ingested_total", source="baochinhphu") == 7
    assert value(found, "syndication_articles_ingested_total", source=ODD_ID) == 0
    assert value(found, "syndication_feed_requests_total", status="200") == 2
    assert value(found, "syndication_feed_requests_total", status="304") == 1
    assert value(found, "syndication_feed_requests_total", status="404") == 1
    assert value(found, "syndication_deliveries_attempted_total", result="sent") == 2
    assert value(found, "syndication_deliveries_attempted_total", result="retry") == 1
    assert (
        value(found, "syndication_deliveries_attempted_total", result="failed") == 0
    )  # present from the start
    assert value(found, "syndication_send_seconds_count") == 3
    assert value(found, "syndication_send_seconds_sum") == pytest.approx(31.203)
    assert value(found, "syndication_send_seconds_bucket", le="0.005") == 1
    assert value(found, "syndication_send_seconds_bucket", le="0.25") == 2
    assert value(found, "syndication_send_seconds_bucket", le="30.0") == 2
    assert value(found, "syndication_send_seconds_bucket", le="+Inf") == 3
    assert {le for name, labels in found for key, le in labels if name.endswith("_bucket")} == {
        *(str(b) for b in SEND_BUCKETS),
        "+Inf",
    }
    assert not any(name.endswith("_created") for name, _ in found)


def test_gauges_come_from_the_snapshot() -> None:
    metrics = Metrics()
    found = samples(metrics.render(snapshot()))

    assert value(found, "syndication_store_up") == 1
    assert value(found, "syndication_info", version=__version__) == 1
    deliveries = {
        dict(labels)["status"]: v for (name, labels), v in found.items() if name == "syndication_deliveries"
    }
    assert deliveries == {"pending": 3, "sending": 0, "sent": 120, "retrying": 2, "failed": 1}
    assert value(found, "syndication_subscribers", status="active") == 40
    assert value(found, "syndication_subscribers", status="bounced") == 0
    assert value(found, "syndication_articles") == 987
    assert value(found, "syndication_source_consecutive_errors", source="baochinhphu") == 0
    assert value(found, "syndication_source_consecutive_errors", source=ODD_ID) == 4
    assert value(found, "syndication_source_last_success_timestamp_seconds", source="baochinhphu") == (
        LAST_SUCCESS.timestamp()
    )
    # Never succeeded: no series rather than a timestamp of 1970.
    assert ("syndication_source_last_success_timestamp_seconds", frozenset({("source", ODD_ID)})) not in found
    assert any(name.startswith("process_") for name, _ in found) or not _has_proc()


def test_each_scrape_shows_only_the_snapshot_it_was_given() -> None:
    metrics = Metrics()
    metrics.render(snapshot())
    found = samples(metrics.render(snapshot(sources=(), articles=0)))
    assert value(found, "syndication_articles") == 0
    assert not any(name.startswith("syndication_source_") for name, _ in found)


def test_without_a_snapshot_the_store_is_down_and_its_gauges_absent() -> None:
    metrics = Metrics()
    metrics.observe_feed_request(200)
    found = samples(metrics.render(None))
    assert value(found, "syndication_store_up") == 0
    assert value(found, "syndication_feed_requests_total", status="200") == 1
    for name in ("syndication_articles", "syndication_deliveries", "syndication_subscribers"):
        assert not any(n == name for n, _ in found), name


def test_two_instances_count_apart() -> None:
    first, second = Metrics(), Metrics()
    first.observe_feed_request(200)
    assert value(samples(first.render(None)), "syndication_feed_requests_total", status="200") == 1
    assert not any(n == "syndication_feed_requests_total" for n, _ in samples(second.render(None)))


def test_unknown_results_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="poll result"):
        metrics.observe_poll("a", "ok", 0)
    with pytest.raises(ValueError, match="negative"):
        metrics.observe_poll("a", "new", -1)
    with pytest.raises(ValueError, match="send result"):
        metrics.observe_send("bounced", 0.1)
    with pytest.raises(ValueError, match="negative"):
        metrics.observe_send("sent", -0.1)


def test_content_type_is_the_text_format_rendered() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")
    assert b"# TYPE syndication_polls_total counter" in Metrics().render(None)


def _has_proc() -> bool:
    from pathlib import Path

    return Path("/proc/self/stat").exists()
