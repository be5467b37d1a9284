"""APScheduler wiring (the jobs call core). For now: when a cron schedule fires next.

APScheduler lives in this module only (STYLE.md). The service loop that runs polls,
feed rebuilds and digests on their schedules builds on ``next_run``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger


def next_run(schedule: str, *, timezone: str, after: datetime) -> datetime | None:
    """The first time strictly after ``after`` at which the 5-field cron ``schedule``
    fires in ``timezone``, as aware UTC; ``None`` if it never fires again.

    Raises:
        ValueError: ``schedule`` is not a valid cron expression.
    """
    trigger = CronTrigger.from_crontab(schedule, timezone=ZoneInfo(timezone))
    fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    return fire.astimezone(UTC) if fire is not None else None
