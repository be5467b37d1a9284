"""When to poll a source next: pure decisions from a poll's outcome.

Pure: no I/O, no clock (``now`` is an argument). The rules:

* After a success the next poll is ``now + interval``, pushed later by the
  publisher's own hints, which are lower bounds: ``Retry-After``,
  ``Cache-Control: max-age`` and RSS ``ttl``. A hint is capped at
  ``max_lower_bound`` so one odd header cannot silence a source for weeks.
* After a failure the delay doubles with each consecutive error, starting at
  the source's interval and capped at ``max(interval, backoff_cap)``. A failing
  source is never abandoned: it keeps being retried at the cap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

_MAX_AGE = re.compile(r"(?:^|[,\s])(s-maxage|max-age)\s*=\s*\"?(\d+)")


def cache_max_age(headers: Mapping[str, str]) -> timedelta | None:
    """``Cache-Control: max-age`` (or ``s-maxage``) as a timedelta; ``None`` when absent
    or when the response says ``no-store``/``no-cache``."""
    value = headers.get("cache-control", "").lower()
    if not value or "no-store" in value or "no-cache" in value:
        return None
    ages = [int(m.group(2)) for m in _MAX_AGE.finditer(value)]
    return timedelta(seconds=max(ages)) if ages else None


def retry_after(value: str | None, *, now: datetime) -> datetime | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as an aware UTC time."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        # A huge number is as good as "much later": clamp instead of overflowing datetime.
        return now + timedelta(seconds=min(int(text), 10 * 365 * 86400))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def next_after_success(
    *,
    now: datetime,
    interval: timedelta,
    ttl: timedelta | None = None,
    max_age: timedelta | None = None,
    not_before: datetime | None = None,
    max_lower_bound: timedelta = timedelta(days=1),
) -> datetime:
    """The next poll after a successful one (including a 304)."""
    cap = max(interval, max_lower_bound)
    delay = interval
    for hint in (ttl, max_age):
        if hint is not None:
            delay = max(delay, min(hint, cap))
    when = now + delay
    if not_before is not None:
        when = max(when, min(not_before, now + cap))
    return when


def backoff(*, error_count: int, interval: timedelta, backoff_cap: timedelta) -> timedelta:
    """Delay after ``error_count`` consecutive failures (1 for the first)."""
    cap = max(interval, backoff_cap)
    # Doubling past 2**20 intervals exceeds any sane cap; stop multiplying early.
    exponent = min(max(error_count, 1) - 1, 20)
    delay: timedelta = interval * (2**exponent)
    return min(delay, cap)


def next_after_failure(
    *,
    now: datetime,
    error_count: int,
    interval: timedelta,
    backoff_cap: timedelta,
    not_before: datetime | None = None,
    max_lower_bound: timedelta = timedelta(days=1),
) -> datetime:
    """The next attempt after a failed poll; ``not_before`` is a server's Retry-After."""
    when = now + backoff(error_count=error_count, interval=interval, backoff_cap=backoff_cap)
    if not_before is not None:
        when = max(when, min(not_before, now + max(interval, max_lower_bound)))
    return when
