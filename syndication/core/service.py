"""The running service: workers that poll due sources and send due deliveries, the
digest runs the scheduler asks for, the daily clean-up, and heartbeats.

All the state is in the store, so any number of processes can share the work
(miniflux and listmonk keep their schedules the same way):

- a source's next poll is its ``next_attempt`` (interval with jitter, backoff
  after errors, the server's ``Retry-After`` and caching hints); a worker claims
  due sources with a lease, polls them, and recording the outcome gives the lease
  back. A worker that dies holding one loses it when the lease runs out;
- a digest run is an issue, unique by (digest, scheduled time): whichever
  scheduler plans it first writes the outbox, a second finds it;
- a delivery is claimed with a lease and marked as it is sent; on a stop the
  claimed, untried ones are given back at once. Every process that sends says it is
  alive in the store (``nodes``); the claims of one that is gone (silent for
  ``SILENT_TICKS`` ticks, or, on this host, no process with its id) are taken over
  at once instead of when their leases run out (``claimer_state``).

Workers sleep until the next due time they know of, at most ``service.tick``,
and wake at once when this process planned an issue (``wake``). Nothing here
reads the wall clock: the ``Syndication``'s clock is used.

Must not: import the scheduler or web (they call this).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from syndication.errors import StoreError, SyndicationError
from syndication.types import NodeInfo

if TYPE_CHECKING:
    from syndication.core import Syndication

log = logging.getLogger(__name__)

NODE_EXPIRY = timedelta(days=1)
"""A process silent for this long is forgotten by the clean-up."""
SILENT_TICKS = 6
"""A process whose heartbeat is this many ``service.tick`` old (and at least
``MIN_SILENCE``) has stopped: its delivery claims are taken over."""
MIN_SILENCE = timedelta(minutes=1)

ClaimerState = Literal["alive", "gone", "unknown"]


def claimer_state(
    owner: str,
    node: NodeInfo | None,
    *,
    now: datetime,
    silence: timedelta,
    host: str,
    pid: int,
    pid_exists: Callable[[int], bool],
) -> ClaimerState:
    """What can be told about the process that holds leases as ``owner`` (``host:pid:tag``),
    from its heartbeat in the store (``node``) and, on this host, from its process id.

    - ``gone``: it runs on this host (``host``, this process being ``pid``) and no
      process has its id; or its last heartbeat is older than ``silence``. Its claims
      can be taken over now: nobody will finish them.
    - ``alive``: a heartbeat within ``silence`` (or this very process).
    - ``unknown``: no heartbeat at all (a sender of an older version, or one that left
      the list of nodes as it stopped): only its leases running out tell.

    Process ids are only compared on the same host name: processes that share a store
    must have distinct host names (as containers and machines do by default).
    """
    parts = owner.split(":")
    if len(parts) >= 2 and parts[0] == host and parts[1].isdigit():
        claimer = int(parts[1])
        if claimer == pid:
            return "alive"
        if not pid_exists(claimer):
            return "gone"
    if node is None:
        return "unknown"
    return "gone" if now - node.heartbeat > silence else "alive"


def pid_exists(pid: int) -> bool:
    """Whether a process with this id runs on this host (a zombie counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


class Worker:
    """Polls due sources and sends due deliveries until ``stop`` is set."""

    def __init__(self, app: Syndication, *, polls: bool = True, deliveries: bool = True) -> None:
        self._app = app
        self._polls = polls
        self._deliveries = deliveries
        self.wake = asyncio.Event()
        """Set it to make the delivery loop look for work now (an issue was just planned)."""
        self.polled = 0
        self.sent = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish what is in flight (bounded by
        ``service.stop_timeout``) and give back every lease this process holds."""
        app = self._app
        loops = []
        if self._polls:
            loops.append(asyncio.create_task(self._guard("polls", self._poll_loop, stop)))
        if self._deliveries:
            loops.append(asyncio.create_task(self._guard("deliveries", self._send_loop, stop)))
        try:
            await stop.wait()
        finally:
            timeout = app.settings.service.stop_timeout.total_seconds()
            self.wake.set()
            _, pending = await asyncio.wait(loops, timeout=timeout) if loops else (set(), set())
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if pending:
                log.warning(
                    "stopped without waiting for work in flight after %ss: its leases run out "
                    "and another worker takes it up",
                    timeout,
                )
            with contextlib.suppress(SyndicationError):
                released = await app.release_sources()
                if released:
                    log.info("gave back %d source leases", released)

    async def _guard(
        self, name: str, loop: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        """Run one loop; a store outage pauses it (logged) instead of ending it."""
        while not stop.is_set():
            try:
                await loop(stop)
            except StoreError as exc:
                log.error("%s: the store failed (%s); trying again shortly", name, exc)  # noqa: TRY400 - our error: its message is the story
                await _sleep(stop, self._app.settings.service.tick.total_seconds(), None)
            except Exception:  # a bug must not stop the service; keep its traceback
                log.exception("%s: internal error; trying again shortly", name)
                await _sleep(stop, self._app.settings.service.tick.total_seconds(), None)

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        app = self._app
        slots = app.settings.fetch.concurrency
        tick = app.settings.service.tick
        running: set[asyncio.Task[None]] = set()
        freed = asyncio.Event()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            freed.set()

        try:
            while not stop.is_set():
                free = slots - len(running)
                claimed = await app.claim_sources(limit=free) if free > 0 else []
                if claimed:
                    task = asyncio.create_task(self._poll(claimed))
                    running.add(task)
                    task.add_done_callback(finished)
                    continue
                freed.clear()
                await _sleep(stop, _until(await app.next_poll(), app.clock(), tick), freed)
        finally:
            if running:
                # Stopping: the polls in flight finish (the caller bounds how long).
                await asyncio.gather(*running, return_exceptions=True)

    async def _poll(self, source_ids: list[str]) -> None:
        results = await self._app.poll_claimed(source_ids)
        self.polled += len(results)
        for result in results:
            if result.status in ("new", "updated"):
                log.info(
                    "source %s: %d new, %d updated articles",
                    result.source_id,
                    result.counts.new,
                    result.counts.updated,
                )

    async def _send_loop(self, stop: asyncio.Event) -> None:
        app = self._app
        service = await app.digest_service()
        tick = app.settings.service.tick
        while not stop.is_set():
            self.wake.clear()
            summary = await service.send(None, stop=stop)
            self.sent += summary.sent
            self.failed += summary.failed
            if summary.sent or summary.failed or summary.retrying:
                log.info(
                    "deliveries: %d sent, %d to retry, %d failed",
                    summary.sent,
                    summary.retrying,
                    summary.failed,
                )
            await _sleep(stop, _until(await app.next_delivery(), app.clock(), tick), self.wake)


def _until(due: datetime | None, now: datetime, tick: timedelta) -> float:
    """Seconds to sleep before looking again: until ``due``, at most a tick (other
    processes may make work due meanwhile), at least a moment."""
    wait = tick if due is None else min(tick, max(due - now, timedelta(0)))
    return max(wait.total_seconds(), 0.05)


async def _sleep(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None) -> None:
    """Sleep ``seconds``, or less if ``stop`` (or ``wake``) is set meanwhile."""
    events = [stop] if wake is None else [stop, wake]
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
