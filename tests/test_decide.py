"""When to poll next: backoff, caps and the publisher's lower bounds."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from syndication.ingest import decide

NOW = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
M15 = timedelta(minutes=15)


def test_success_waits_one_interval() -> None:
    assert decide.next_after_success(now=NOW, interval=M15) == NOW + M15


def test_ttl_and_max_age_are_lower_bounds() -> None:
    hour, forty = timedelta(hours=1), timedelta(minutes=40)
    assert decide.next_after_success(now=NOW, interval=M15, ttl=hour) == NOW + hour
    assert decide.next_after_success(now=NOW, interval=M15, max_age=forty) == NOW + forty
    # A hint shorter than the interval never makes us poll sooner.
    assert decide.next_after_success(now=NOW, interval=M15, ttl=timedelta(minutes=1)) == NOW + M15


def test_lower_bounds_are_capped() -> None:
    week = timedelta(days=7)
    got = decide.next_after_success(
        now=NOW, interval=M15, ttl=week, not_before=NOW + week, max_lower_bound=timedelta(days=1)
    )
    assert got == NOW + timedelta(days=1)


def test_retry_after_on_success_is_honoured() -> None:
    later = NOW + timedelta(hours=2)
    assert decide.next_after_success(now=NOW, interval=M15, not_before=later) == later


def test_backoff_doubles_then_caps_and_never_gives_up() -> None:
    cap = timedelta(hours=6)
    delays = [decide.backoff(error_count=n, interval=M15, backoff_cap=cap) for n in range(1, 12)]
    assert delays[:4] == [M15, 2 * M15, 4 * M15, 8 * M15]
    assert delays[-1] == cap
    assert decide.backoff(error_count=10_000, interval=M15, backoff_cap=cap) == cap


def test_backoff_cap_never_below_interval() -> None:
    day = timedelta(days=1)
    assert decide.backoff(error_count=5, interval=day, backoff_cap=timedelta(hours=1)) == day


def test_failure_honours_retry_after() -> None:
    later = NOW + timedelta(hours=3)
    got = decide.next_after_failure(
        now=NOW, error_count=1, interval=M15, backoff_cap=timedelta(hours=6), not_before=later
    )
    assert got == later


@given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=60, max_value=86400 * 3))
def test_backoff_is_monotonic_and_bounded(errors: int, seconds: int) -> None:
    interval = timedelta(seconds=seconds)
    cap = timedelta(hours=6)
    this = decide.backoff(error_count=errors, interval=interval, backoff_cap=cap)
    following = decide.backoff(error_count=errors + 1, interval=interval, backoff_cap=cap)
    assert interval <= this <= following <= max(interval, cap)


def test_cache_control() -> None:
    assert decide.cache_max_age({"cache-control": "public, max-age=600"}) == timedelta(minutes=10)
    assert decide.cache_max_age({"cache-control": "max-age=60, s-maxage=900"}) == timedelta(minutes=15)
    assert decide.cache_max_age({"cache-control": "no-store, max-age=600"}) is None
    assert decide.cache_max_age({}) is None


def test_retry_after_forms() -> None:
    assert decide.retry_after("120", now=NOW) == NOW + timedelta(minutes=2)
    assert decide.retry_after("Fri, 27 Nov 2026 03:00:00 GMT", now=NOW) == datetime(
        2026, 11, 27, 3, tzinfo=UTC
    )
    assert decide.retry_after("ngày mai", now=NOW) is None
    huge = decide.retry_after("99999999999999999999", now=NOW)
    assert huge is not None
    assert huge > NOW + timedelta(days=365)
    assert decide.retry_after(None, now=NOW) is None
