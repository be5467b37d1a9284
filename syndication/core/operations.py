"""Operating the service: the health check and the metrics snapshot, read from the store.

``health`` answers "can this process do its work now?" for ``/healthz``;
``metrics_snapshot`` reads the totals that ``/metrics`` reports as gauges.
``OperationsService`` puts both behind what the web app asks
(``web.app.Operations``, satisfied structurally: core does not import web), and
keeps a flood of requests from becoming a flood of store queries: concurrent health
checks share one look at the store, and the totals are reused for
``SNAPSHOT_MAX_AGE`` seconds (Prometheus scrapes every 15 s or more; several
scrapers, or someone reloading the page, cost one query).

Both only read: they never upgrade the store or record sources, so a probe cannot
change anything, and a store that is down makes the report fail rather than raise.

Must not: render the metrics format (``syndication.metrics`` does) or read the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from syndication.core.feeds import DbRunner
from syndication.errors import StoreError
from syndication.metrics import CONTENT_TYPE, Metrics
from syndication.store import Store
from syndication.types import Clock, HealthReport, MetricsSnapshot, SchedulerState, SourceState

__all__ = [
    "HEARTBEAT_MAX_AGE",
    "PING_TIMEOUT",
    "SNAPSHOT_MAX_AGE",
    "OperationsService",
    "Shared",
    "health",
    "metrics_snapshot",
    "node_lost",
]

log = logging.getLogger(__name__)

HEARTBEAT_MAX_AGE = timedelta(minutes=2)
"""A scheduler whose last heartbeat is older than this is taken for stuck."""
PING_TIMEOUT = 5.0
"""Seconds the store may take to answer the health check before it counts as down."""
SNAPSHOT_MAX_AGE = 5.0
"""Seconds the store's totals behind the gauges of ``/metrics`` are reused."""

T = TypeVar("T")


def node_lost(heartbeat: datetime, *, now: datetime, tick: timedelta) -> bool:
    """Whether a process whose last heartbeat was at ``heartbeat`` has stopped without
    saying so (killed, its machine lost): silent for longer than ``HEARTBEAT_MAX_AGE``,
    or three ``service.tick`` (a process beats every tick) when that is longer.

    Pure: ``now`` is an argument.
    """
    return now - heartbeat > max(HEARTBEAT_MAX_AGE, 3 * tick)


async def health(
    *,
    db: DbRunner,
    store: Store,
    clock: Clock,
    source_ids: Sequence[str],
    scheduler_heartbeat: datetime | None,
    heartbeat_max_age: timedelta = HEARTBEAT_MAX_AGE,
    timeout: float = PING_TIMEOUT,
) -> HealthReport:
    """Whether the store answers and the scheduler (if this process runs one) is alive,
    how long ago a source was last polled successfully, and how many are failing.

    ``scheduler_heartbeat`` is the time of the scheduler's last heartbeat, None when
    this process runs no scheduler. Never raises for a failing store: it is reported.
    """
    now = clock()
    store_ok = True
    last_success: datetime | None = None
    failing: int | None = None
    try:
        # A store that hangs is as bad as one that refuses; the probe answers either way.
        last_success, failing = await asyncio.wait_for(db(_ping_and_sources, store, source_ids), timeout)
    except (StoreError, TimeoutError) as exc:
        log.warning("health check: the store failed: %s", exc or "no answer in time")
        store_ok = False
    scheduler: SchedulerState = "absent"
    scheduler_age = None
    if scheduler_heartbeat is not None:
        scheduler_age = now - scheduler_heartbeat
        scheduler = "alive" if scheduler_age <= heartbeat_max_age else "stale"
    return HealthReport(
        checked=now,
        store_ok=store_ok,
        scheduler=scheduler,
        scheduler_age=scheduler_age,
        last_poll_age=None if last_success is None else now - last_success,
        sources=len(source_ids),
        sources_failing=failing,
    )


async def metrics_snapshot(*, db: DbRunner, store: Store, source_ids: Sequence[str]) -> MetricsSnapshot:
    """The store's totals for the gauges of ``/metrics``, read in one trip to the store's thread.

    Raises:
        StoreError: the database failed.
    """
    return await db(_read_snapshot, store, source_ids)


class Shared(Generic[T]):
    """The answer of ``call``, shared by every caller that comes while it runs and reused
    for ``max_age`` seconds of ``clock`` after it (0: only shared). A caller that goes away
    does not cancel it for the others; a failure is not reused.
    """

    def __init__(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        max_age: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._call = call
        self._max_age = max_age
        self._clock = clock
        self._running: asyncio.Future[T] | None = None
        self._answer: tuple[float, T] | None = None

    async def __call__(self) -> T:
        if self._answer is not None:
            at, answer = self._answer
            if 0 <= self._clock() - at < self._max_age:  # (a clock set back: ask again)
                return answer
        if self._running is None:
            self._running = asyncio.ensure_future(self._ask())
        return await asyncio.shield(self._running)

    async def _ask(self) -> T:
        try:
            answer = await self._call()
            self._answer = (self._clock(), answer)
            return answer
        finally:
            self._running = None


class OperationsService:
    """What ``/healthz`` and ``/metrics`` ask of the service (``web.app.Operations``).

    ``health`` and ``snapshot`` are the calls that read the store (usually
    ``Syndication.health`` and ``Syndication.metrics_snapshot``, bound to what the
    process runs); ``metrics`` holds the counters and renders the answer. Health checks
    running at once share one; a snapshot (or the store's failure to give one) is reused
    for ``snapshot_max_age`` seconds of ``clock`` (monotonic).
    """

    metrics_content_type = CONTENT_TYPE

    def __init__(
        self,
        *,
        metrics: Metrics,
        health: Callable[[], Awaitable[HealthReport]],
        snapshot: Callable[[], Awaitable[MetricsSnapshot]],
        snapshot_max_age: float = SNAPSHOT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._health = Shared(health)
        self._snapshot = snapshot
        self._snapshots = Shared(self._read_snapshot, max_age=snapshot_max_age, clock=clock)
        # The metrics' own method, not a wrapper: it is called for every feed request.
        self.observe_feed_request: Callable[[int], None] = metrics.observe_feed_request

    async def health(self) -> HealthReport:
        return await self._health()

    async def metrics(self) -> bytes:
        """The metrics text; the counters still go out when the store cannot be read."""
        return self._metrics.render(await self._snapshots())

    async def _read_snapshot(self) -> MetricsSnapshot | None:
        try:
            return await self._snapshot()
        except StoreError as exc:
            log.warning("metrics: cannot read the store: %s", exc)
            return None


def _ping_and_sources(store: Store, source_ids: Sequence[str]) -> tuple[datetime | None, int]:
    """The newest success among the configured sources, and how many failed their last poll."""
    store.ping()
    states = _configured(store, source_ids)
    return _last_success(states), sum(1 for s in states if s.error_count > 0)


def _read_snapshot(store: Store, source_ids: Sequence[str]) -> MetricsSnapshot:
    return MetricsSnapshot(
        deliveries=store.count_deliveries_by_status(),
        subscribers=store.count_subscribers_by_status(),
        articles=store.count_articles(),
        sources=tuple(_configured(store, source_ids)),
    )


def _configured(store: Store, source_ids: Sequence[str]) -> list[SourceState]:
    """The stored state of the configured sources, in their order; sources no longer
    configured keep their rows (and articles) but are nobody's concern now."""
    if not source_ids:
        return []
    states = store.source_states(source_ids)
    return [states[i] for i in source_ids if i in states]


def _last_success(states: Sequence[SourceState]) -> datetime | None:
    return max((s.last_success for s in states if s.last_success is not None), default=None)
