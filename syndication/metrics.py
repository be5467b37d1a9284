"""Prometheus metrics: what this process did (counters) and what the store holds (gauges).

``Metrics`` owns a ``CollectorRegistry`` of its own, never the library's global
one, so that several apps in one process (and tests) each count only their own
work. The rest of syndication calls its ``observe_*`` methods where things happen
and ``render`` when ``/metrics`` is scraped:

- counters and the send-time histogram count events of this process since it
  started (a ``serve`` process counts feed requests, the process that polls counts
  polls); Prometheus' ``rate()`` copes with their reset on a restart;
- gauges are set at scrape time from a ``MetricsSnapshot`` read from the store, so
  every process reports the same totals, whoever wrote them.

This is the only module that imports ``prometheus_client``.

Must not: read the store, the settings or the clock itself; the snapshot is handed in.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from syndication import __version__
from syndication.types import MetricsSnapshot

__all__ = ["CONTENT_TYPE", "POLL_RESULTS", "SEND_BUCKETS", "SEND_RESULTS", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The Prometheus text format ``render`` writes (version 0.0.4: what every Prometheus reads)."""

POLL_RESULTS = ("new", "updated", "unchanged", "not_modified", "error")
"""``PollStatus`` values: the ``result`` label of ``syndication_polls_total``."""
SEND_RESULTS = ("sent", "retry", "failed")
"""The ``result`` label of ``syndication_deliveries_attempted_total``."""
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a local relay answers in milliseconds, a remote server in a second or
two, and a greylisting or overloaded one up to the client's timeout."""


class Metrics:
    """The metrics of one app; see the module docstring. Thread-safe."""

    def __init__(self) -> None:
        # Without this every counter and histogram series has a ``_created`` twin: twice
        # the series for a start time that ``process_start_time_seconds`` already gives.
        # (A setting of the library, not of a registry; this module is its only user.)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # (untyped in the library)
        self.registry = CollectorRegistry()
        registry = self.registry
        self._polls = Counter(
            "syndication_polls",
            "Polls of sources by this process, by source and result.",
            ["source", "result"],
            registry=registry,
        )
        self._ingested = Counter(
            "syndication_articles_ingested",
            "New articles stored by this process's polls, by source.",
            ["source"],
            registry=registry,
        )
        self._feed_requests = Counter(
            "syndication_feed_requests",
            "Answers to requests for feed files (feeds, OPML, stylesheet), by HTTP status.",
            ["status"],
            registry=registry,
        )
        self._sends = Counter(
            "syndication_deliveries_attempted",
            "Delivery attempts by this process, by result (sent, retry, failed).",
            ["result"],
            registry=registry,
        )
        self._send_seconds = Histogram(
            "syndication_send_seconds",
            "Time to hand one message to the mail transport.",
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self._feed_counts: defaultdict[int, int] = defaultdict(int)
        self._feed_synced: dict[int, int] = {}
        # Known label values start at 0, so that rate() and alerts see a series
        # before the first event rather than nothing.
        for result in SEND_RESULTS:
            self._sends.labels(result=result)
        self._snapshot = _SnapshotCollector()
        registry.register(self._snapshot)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        # One scrape at a time: the snapshot collector holds the snapshot being rendered.
        self._render_lock = threading.Lock()

    def observe_poll(self, source_id: str, result: str, new_articles: int) -> None:
        """Count one poll of ``source_id`` with its ``result`` (a ``PollStatus``).

        Raises:
            ValueError: ``result`` is not one of ``POLL_RESULTS``, or ``new_articles`` < 0.
        """
        if result not in POLL_RESULTS:
            raise ValueError(f"unknown poll result {result!r}")
        if new_articles < 0:
            raise ValueError("new_articles must not be negative")
        self._polls.labels(source=source_id, result=result).inc()
        self._ingested.labels(source=source_id).inc(new_articles)

    def observe_feed_request(self, status: int) -> None:
        """Count one answer to a request for a feed file.

        Called for every feed request (tens of thousands a second), so it only bumps a
        plain dict; ``render`` moves the counts into the Prometheus counter. (The
        counter's label lookup and locks cost a sixth of the 304 answer's throughput.)
        """
        self._feed_counts[status] += 1

    def observe_send(self, result: str, seconds: float) -> None:
        """Count one delivery attempt and how long the transport took over it.

        Raises:
            ValueError: ``result`` is not one of ``SEND_RESULTS``, or ``seconds`` < 0.
        """
        if result not in SEND_RESULTS:
            raise ValueError(f"unknown send result {result!r}")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._sends.labels(result=result).inc()
        self._send_seconds.observe(seconds)

    def render(self, snapshot: MetricsSnapshot | None) -> bytes:
        """Every metric in the Prometheus text format (``CONTENT_TYPE``).

        ``snapshot`` sets the gauges read from the store; None when the store could
        not be read: ``syndication_store_up`` is then 0 and those gauges are left
        out (a missing series is "unknown", a 0 would be a lie).
        """
        with self._render_lock:
            for status, count in list(self._feed_counts.items()):
                delta = count - self._feed_synced.get(status, 0)
                if delta:
                    self._feed_requests.labels(status=str(status)).inc(delta)
                    self._feed_synced[status] = count
            self._snapshot.snapshot = snapshot
            try:
                return generate_latest(self.registry)
            finally:
                self._snapshot.snapshot = None


class _SnapshotCollector:
    """Gauges built at each scrape from the snapshot being rendered, so that a source
    or status that disappeared leaves no stale series behind."""

    def __init__(self) -> None:
        self.snapshot: MetricsSnapshot | None = None

    def describe(self) -> Sequence[Metric]:
        # Names only, for the registry's duplicate check; no samples.
        return list(self._families(None, samples=False))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.snapshot, samples=True)

    def _families(self, snapshot: MetricsSnapshot | None, *, samples: bool) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "syndication_info", "The running version of syndication.", labels=["version"]
        )
        up = GaugeMetricFamily("syndication_store_up", "1 when the store answered this scrape, else 0.")
        deliveries = GaugeMetricFamily(
            "syndication_deliveries", "Deliveries of every digest issue, by status.", labels=["status"]
        )
        subscribers = GaugeMetricFamily(
            "syndication_subscribers", "Subscribers by status.", labels=["status"]
        )
        articles = GaugeMetricFamily("syndication_articles", "Articles stored, duplicates included.")
        errors = GaugeMetricFamily(
            "syndication_source_consecutive_errors",
            "Failed polls of the source since its last success.",
            labels=["source"],
        )
        success = GaugeMetricFamily(
            "syndication_source_last_success_timestamp_seconds",
            "When the source was last polled successfully (Unix time); absent when never.",
            labels=["source"],
        )
        if samples:
            info.add_metric([__version__], 1)
            up.add_metric([], 0 if snapshot is None else 1)
        if samples and snapshot is not None:
            for status, count in sorted(snapshot.deliveries.items()):
                deliveries.add_metric([status], count)
            for status, count in sorted(snapshot.subscribers.items()):
                subscribers.add_metric([status], count)
            articles.add_metric([], snapshot.articles)
            for state in snapshot.sources:
                errors.add_metric([state.id], state.error_count)
                if state.last_success is not None:
                    success.add_metric([state.id], state.last_success.timestamp())
        yield from (info, up, deliveries, subscribers, articles, errors, success)
