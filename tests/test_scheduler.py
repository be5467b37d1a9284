"""Cron schedules in the site time zone."""

from datetime import UTC, datetime

import pytest

from syndication.scheduler import next_run

SAIGON = "Asia/Ho_Chi_Minh"


def test_daily_at_seven_in_saigon_is_midnight_utc() -> None:
    before = datetime(2026, 11, 26, 23, 59, tzinfo=UTC)  # 06:59 in Saigon
    assert next_run("0 7 * * *", timezone=SAIGON, after=before) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def test_strictly_after() -> None:
    at = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)  # exactly 07:00 in Saigon
    assert next_run("0 7 * * *", timezone=SAIGON, after=at) == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)


def test_weekly_on_monday() -> None:
    friday = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert next_run("0 7 * * mon", timezone=SAIGON, after=friday) == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def test_invalid_schedule() -> None:
    with pytest.raises(ValueError, match="higher than the maximum"):
        next_run("0 25 * * *", timezone=SAIGON, after=datetime(2026, 11, 27, tzinfo=UTC))
