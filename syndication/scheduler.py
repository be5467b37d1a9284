"""APScheduler wiring: the jobs call core, and this module only says *when*.

``ServiceScheduler`` runs on the service's event loop (APScheduler 3.x,
``AsyncIOScheduler``) with three kinds of jobs:

- one per digest, on its cron schedule in the site time zone. The job works out
  which scheduled run is due (``due_run``: the latest fire time no older than the
  digest's grace period) and asks core to plan that run; core makes it an issue
  unique by (digest, scheduled time), so two schedulers, or one restarting, never
  make two;
- the clean-up (``[retention]``), on its own cron schedule;
- a heartbeat every ``service.tick``, which records this process in the store and
  tells ``/healthz`` that the scheduler is alive.

Polls and deliveries are not jobs here: their schedule is state in the store
(each source's next poll, each delivery's next attempt), which the workers in
``core.service`` follow, so that workers in other processes share it.

APScheduler keeps its jobs in memory and knows nothing of runs missed while the
service was down: ``catch_up`` (called at start) plans, once, a run that fell due
within its grace period and logs the one it skips when that is older. Its
articles are not lost: each subscriber's next digest starts where their last
delivered one ended. Cron arithmetic uses the injected clock, so the restart
rules are tested without waiting; only the firing itself follows the wall clock.

APScheduler lives in this module only (STYLE.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syndication.core import Syndication
from syndication.errors import SyndicationError
from syndication.types import Clock, DigestRun, DigestSpec

log = logging.getLogger(__name__)


def next_run(schedule: str, *, timezone: str, after: datetime) -> datetime | None:
    """The first time strictly after ``after`` at which the 5-field cron ``schedule``
    fires in ``timezone``, as aware UTC; ``None`` if it never fires again.

    Raises:
        ValueError: ``schedule`` is not a valid cron expression.
    """
    trigger = CronTrigger.from_crontab(schedule, timezone=ZoneInfo(timezone))
    fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    return fire.astimezone(UTC) if fire is not None else None


def last_run(schedule: str, *, timezone: str, now: datetime, within: timedelta) -> datetime | None:
    """The latest time in ``[now - within, now]`` at which ``schedule`` fires, or None."""
    latest = None
    fire = next_run(schedule, timezone=timezone, after=now - within - timedelta(microseconds=1))
    while fire is not None and fire <= now:
        latest = fire
        fire = next_run(schedule, timezone=timezone, after=fire)
    return latest


def due_run(spec: DigestSpec, *, timezone: str, now: datetime) -> datetime | None:
    """The scheduled run of ``spec`` that should be sent at ``now``: the latest fire time
    no older than its grace period; None when none is (too late: it is skipped)."""
    return last_run(spec.schedule, timezone=timezone, now=now, within=spec.grace)


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A run missed by more than its grace period (the service was down)."""

    digest: str
    scheduled_for: datetime


class ServiceScheduler:
    """Digest runs, the clean-up and heartbeats on the running event loop."""

    def __init__(
        self,
        app: Syndication,
        *,
        role: str,
        clock: Clock | None = None,
        on_planned: Callable[[], None] | None = None,
    ) -> None:
        self._app = app
        self._role = role
        self._clock = clock or app.clock
        self._on_planned = on_planned
        self._timezone = app.settings.site.timezone
        self._scheduler: AsyncIOScheduler | None = None
        self._started = self._clock()
        self.last_beat: datetime | None = None
        """When the heartbeat job last ran: ``/healthz`` calls the scheduler dead when this is old."""

    # --- restarts -------------------------------------------------------------------

    async def catch_up(self) -> tuple[list[DigestRun], list[Skipped]]:
        """At start: plan each digest's run that fell due within its grace period (core
        plans a run once, so this is harmless when it was sent before the restart) and
        log the latest run missed by more than that."""
        now = self._clock()
        runs: list[DigestRun] = []
        skipped: list[Skipped] = []
        for spec in self._app.settings.digests:
            due = due_run(spec, timezone=self._timezone, now=now)
            if due is not None:
                runs.append(await self._run(spec.name, due))
            missed = last_run(
                spec.schedule,
                timezone=self._timezone,
                now=now - spec.grace - timedelta(microseconds=1),
                within=_lookback(spec),
            )
            if missed is not None and await self._app.issue_at(spec.name, missed) is None:
                latest = await self._app.latest_issue(spec.name)
                # Never run before (a new install): nothing was missed.
                if latest is not None and latest[0].scheduled_for < missed:
                    skipped.append(Skipped(digest=spec.name, scheduled_for=missed))
                    log.warning(
                        "digest %s: the run of %s was missed by more than its grace period (%s) "
                        "and is skipped; its articles go into the next run",
                        spec.name,
                        local_time(missed, self._timezone),
                        spec.grace,
                    )
        return runs, skipped

    async def _run(self, name: str, scheduled_for: datetime) -> DigestRun:
        try:
            run = await self._app.run_digest(name, scheduled_for)
        except SyndicationError as exc:
            when = local_time(scheduled_for, self._timezone)
            log.error("digest %s: the run of %s failed: %s", name, when, exc)  # noqa: TRY400 - our error: its message is the story
            return DigestRun(digest=name, scheduled_for=scheduled_for, outcome="failed")
        if run.outcome == "planned" and self._on_planned is not None:
            self._on_planned()
        return run

    # --- jobs -----------------------------------------------------------------------

    async def _digest_job(self, name: str) -> None:
        spec = self._app.settings.digest(name)
        if spec is None:  # pragma: no cover - jobs are made from the same settings
            return
        due = due_run(spec, timezone=self._timezone, now=self._clock())
        if due is None:
            log.warning("digest %s: fired later than its grace period (%s); skipped", name, spec.grace)
            return
        await self._run(name, due)

    async def _prune_job(self) -> None:
        try:
            await self._app.prune()
        except SyndicationError as exc:
            log.error("clean-up failed: %s", exc)  # noqa: TRY400 - our error: its message is the story

    async def beat(self) -> None:
        """Record that this process is alive (the heartbeat job; also called at start)."""
        if await self._app.heartbeat(self._role, self._started):
            self.last_beat = self._clock()

    def start(self) -> None:
        """Add the jobs and start firing them on the running event loop."""
        settings = self._app.settings
        zone = ZoneInfo(self._timezone)
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=zone)
        for spec in settings.digests:
            scheduler.add_job(
                self._digest_job,
                CronTrigger.from_crontab(spec.schedule, timezone=zone),
                args=[spec.name],
                id=f"digest:{spec.name}",
                name=f"digest {spec.name}",
                misfire_grace_time=int(spec.grace.total_seconds()),
                coalesce=True,
                max_instances=1,
            )
        scheduler.add_job(
            self._prune_job,
            CronTrigger.from_crontab(settings.retention.schedule, timezone=zone),
            id="retention",
            name="clean-up",
            misfire_grace_time=3600,
            coalesce=True,
            max_instances=1,
        )
        scheduler.add_job(
            self.beat,
            IntervalTrigger(seconds=max(settings.service.tick.total_seconds(), 1.0), timezone=zone),
            id="heartbeat",
            name="heartbeat",
            coalesce=True,
            max_instances=1,
        )
        scheduler.start()
        self._scheduler = scheduler

    def next_runs(self) -> list[tuple[str, datetime]]:
        """Each job's name and next fire time (aware UTC), heartbeat left out."""
        if self._scheduler is None:
            return []
        runs = [
            (job.name, job.next_run_time.astimezone(UTC))
            for job in self._scheduler.get_jobs()
            if job.id != "heartbeat" and job.next_run_time is not None
        ]
        return sorted(runs, key=lambda run: run[1])

    def shutdown(self) -> None:
        """Stop firing jobs; a job already running finishes on its own."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None


def _lookback(spec: DigestSpec) -> timedelta:
    """How far back to look for a skipped run: a period of the digest, at least a day."""
    return max(spec.period, timedelta(days=1))


def local_time(when: datetime, timezone: str) -> str:
    """``when`` as logs show a scheduled time: ``2026-11-28 07:00 +07`` in ``timezone``."""
    return when.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")
