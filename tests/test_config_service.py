"""Configuration of the running service: ``[service]``, ``[retention]`` and each digest's grace."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from syndication import config
from syndication.errors import ConfigError
from tests.test_config import DIGESTS, GOOD, problems, write

SECRETS = {"SYN_SMTP": "bí-mật", "SYN_SECRET": "x" * 32}


def test_defaults(tmp_path: Path) -> None:
    s = config.load(write(tmp_path, GOOD), environ={})
    assert s.service == config.ServiceSettings(
        workers=True,
        tick=timedelta(seconds=5),
        poll_lease=timedelta(minutes=15),
        jitter=0.1,
        stop_timeout=timedelta(seconds=30),
    )
    assert s.retention == config.RetentionSettings(
        articles=timedelta(days=365), deliveries=timedelta(days=180), schedule="30 2 * * *"
    )


def test_service_and_retention_settings(tmp_path: Path) -> None:
    text = (
        '[service]\nworkers = false\ntick = "2s"\npoll_lease = "1h30m"\njitter = 0.25\nstop_timeout = "1m"\n'
        '[retention]\narticles = "730d"\ndeliveries = "90d"\nschedule = "15 3 * * sun"\n'
    )
    s = config.load(write(tmp_path, text + GOOD), environ={})
    assert s.service == config.ServiceSettings(
        workers=False,
        tick=timedelta(seconds=2),
        poll_lease=timedelta(hours=1, minutes=30),
        jitter=0.25,
        stop_timeout=timedelta(minutes=1),
    )
    assert s.retention == config.RetentionSettings(
        articles=timedelta(days=730), deliveries=timedelta(days=90), schedule="15 3 * * sun"
    )


@pytest.mark.parametrize(("value", "jitter"), [("0", 0.0), ("0.5", 0.5), ("0.05", 0.05)])
def test_jitter_bounds_are_allowed(tmp_path: Path, value: str, jitter: float) -> None:
    s = config.load(write(tmp_path, f"[service]\njitter = {value}\n" + GOOD), environ={})
    assert s.service.jitter == jitter
    assert isinstance(s.service.jitter, float)


@pytest.mark.parametrize("keep", ['"forever"', '" Forever "', "0", '"0"'])
def test_forever_keeps_everything(tmp_path: Path, keep: str) -> None:
    text = f"[retention]\narticles = {keep}\ndeliveries = {keep}\n" + GOOD
    s = config.load(write(tmp_path, text), environ={})
    assert (s.retention.articles, s.retention.deliveries) == (None, None)


def test_parse_keep() -> None:
    assert config.parse_keep("365d") == timedelta(days=365)
    assert config.parse_keep("1d12h") == timedelta(days=1, hours=12)
    assert config.parse_keep("forever") is None
    assert config.parse_keep(0) is None
    assert config.parse_keep("0") is None
    for bad in ("mãi mãi", "", "0s", 365, -1, False, True, None):
        with pytest.raises(ValueError, match=r'^expected a duration such as "365d", or "forever", got '):
            config.parse_keep(bad)


def test_bad_service_and_retention_settings_name_file_key_and_problem(tmp_path: Path) -> None:
    text = (
        '[service]\njitter = 0.9\ntick = "abc"\nworkers = "yes"\npoll_lease = "0s"\n'
        "stop_timeout = 30\nworker = 1\n"
        '[retention]\nschedule = "bad"\narticles = "2h"\ndeliveries = "mãi"\narticle = 1\n'
    )
    assert problems(tmp_path, text + GOOD) == [
        'service.worker: unknown key; did you mean "workers"?',
        "service.jitter: must be a fraction between 0 and 0.5, got 0.9",
        'service.workers: expected true or false, got "yes" (a string)',
        'service.tick: expected a duration such as "15m" or "1h30m", got \'abc\'',
        "service.poll_lease: must be longer than zero, got '0s'",
        'service.stop_timeout: expected a duration such as "15m" or "1h30m", got 30',
        'retention.article: unknown key; did you mean "articles"?',
        'retention.schedule: expected 5 cron fields (minute hour day month weekday) such as "0 7 * * *", '
        'got "bad"',
        'retention.articles: must be at least one day (or "forever")',
        'retention.deliveries: expected a duration such as "365d", or "forever", got \'mãi\'',
    ]


def test_more_bad_values(tmp_path: Path) -> None:
    text = (
        '[service]\njitter = "10%"\n[retention]\nschedule = "99 2 * * *"\narticles = false\ndeliveries = -1\n'
    )
    found = problems(tmp_path, text + GOOD)
    assert len(found) == 4
    assert found[0] == 'service.jitter: expected a whole number or a number, got "10%" (a string)'
    assert found[1].startswith('retention.schedule: invalid cron expression "99 2 * * *": ')
    assert found[2:] == [
        'retention.articles: expected a duration such as "365d", or "forever", got False',
        'retention.deliveries: expected a duration such as "365d", or "forever", got -1',
    ]
    assert problems(tmp_path, "[service]\njitter = -0.1\n" + GOOD) == [
        "service.jitter: must be a fraction between 0 and 0.5, got -0.1"
    ]
    # A day is the least; just under it is refused.
    assert problems(tmp_path, '[retention]\narticles = "23h59m"\n' + GOOD) == [
        'retention.articles: must be at least one day (or "forever")'
    ]
    assert config.load(
        write(tmp_path, '[retention]\narticles = "1d"\n' + GOOD), environ={}
    ).retention.articles == (timedelta(days=1))


def test_sections_must_be_tables(tmp_path: Path) -> None:
    assert problems(tmp_path, 'service = 5\nretention = "forever"\n' + GOOD) == [
        "service: expected a table ([service]), got int",
        "retention: expected a table ([retention]), got str",
    ]


def test_digest_grace(tmp_path: Path) -> None:
    text = GOOD + DIGESTS.replace("max_items = 30", 'max_items = 30\ngrace = "3h30m"')
    daily, weekly = config.load(write(tmp_path, text), environ=SECRETS).digests
    assert (daily.name, daily.grace) == ("daily", timedelta(hours=3, minutes=30))
    assert (weekly.name, weekly.grace) == ("weekly", timedelta(hours=1))


@pytest.mark.parametrize(
    ("grace", "problem"),
    [
        ('"sớm"', 'digests[0].grace: expected a duration such as "15m" or "1h30m", got \'sớm\''),
        ('"0s"', "digests[0].grace: must be longer than zero, got '0s'"),
        ("2", 'digests[0].grace: expected a duration such as "15m" or "1h30m", got 2'),
    ],
)
def test_bad_digest_grace(tmp_path: Path, grace: str, problem: str) -> None:
    text = GOOD + DIGESTS.replace("max_items = 30", f"max_items = 30\ngrace = {grace}")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, environ=SECRETS)
    assert info.value.problems == [f"{path}: {problem}"]


def test_digests_need_an_https_site(tmp_path: Path) -> None:
    # Their one-click unsubscribe links are built on site.base_url; RFC 8058 wants https.
    text = (GOOD + DIGESTS).replace(
        'base_url = "https://portal.example.vn/"', 'base_url = "http://portal.example.vn/"'
    )
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text), environ=SECRETS)
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "site.base_url: digests need an https:// address "
        '(their one-click unsubscribe links are built on it), got "http://portal.example.vn/"'
    ]
    # Without digests, an http site is fine (feeds only).
    assert config.load(write(tmp_path, GOOD.replace("https://portal", "http://portal")), environ={})
