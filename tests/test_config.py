"""Configuration: validated on load, every problem named with file and key."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from syndication import config
from syndication.errors import ConfigError
from syndication.store import display_url

GOOD = """
[site]
title = "Cổng thông tin Đảng bộ Khối"
base_url = "https://portal.example.vn/"

[storage]
url = "sqlite:///data/s.db"

[[categories]]
slug = "xay-dung-dang"
title = "Xây dựng Đảng"

[[sources]]
id = "tin-rss"
url = "file:feeds/tin.rss"
categories = ["xay-dung-dang"]
interval = "1h30m"

[[sources]]
id = "portal"
kind = "html"
url = "https://portal.example.vn/xay-dung-dang"
categories = ["xay-dung-dang"]
allow_private_network = true
[sources.html]
links = ".news-list a.title"
body = "div.content"
remove = [".other-news"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "syndication.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def syndication_with_env(*args: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess, with these variables set."""
    environ = {k: v for k, v in os.environ.items() if k != "SYNDICATION_CONFIG"} | env
    cmd = [sys.executable, "-m", "syndication", "--config", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=120)


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, environ={})
    assert all(p.startswith(f"{path}: ") for p in info.value.problems)
    return [p.removeprefix(f"{path}: ") for p in info.value.problems]


def test_good_config_loads_with_paths_resolved_against_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    s = config.load(path, environ={})
    assert s.site.title == "Cổng thông tin Đảng bộ Khối"
    assert s.site.timezone == "Asia/Ho_Chi_Minh"
    assert s.storage.url == f"sqlite:///{tmp_path}/conf/data/s.db"
    rss, portal = s.sources
    assert rss.url == (tmp_path / "conf" / "feeds" / "tin.rss").as_uri()
    assert rss.kind == "feed"
    assert rss.interval == timedelta(hours=1, minutes=30)
    assert rss.allow_private_network is False
    assert portal.kind == "html"
    assert portal.allow_private_network is True
    assert portal.html.links == ".news-list a.title"
    assert portal.html.remove == (".other-news",)
    assert portal.interval == timedelta(minutes=15)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[site]
title = 5
timezone = "Asia/Hanoi_City"
[[categories]]
slug = "Xây dựng"
title = "Xây dựng Đảng"
[[sources]]
id = "a"
url = "ftp://example.org/x"
kind = "rss"
interval = "soon"
categories = ["khong-co"]
[[sources]]
id = "a"
url = "https://example.org/"
intervall = "5m"
""",
    )
    assert "site.title: expected a string, got 5 (int)" in found
    assert "site.base_url: is required" in found
    assert any(p.startswith('site.timezone: unknown time zone "Asia/Hanoi_City"') for p in found)
    assert any(p.startswith("categories[0].slug: ") for p in found)
    assert 'sources[0].url: expected an http://, https:// or file: URL, got "ftp://example.org/x"' in found
    assert 'sources[0].kind: expected "feed" or "html", got "rss"' in found
    assert any(p.startswith("sources[0].interval: expected a duration") for p in found)
    assert any(p.startswith('sources[0].categories[0]: unknown category "khong-co"') for p in found)
    assert 'sources[1].id: "a" is used by another source' in found
    assert 'sources[1].intervall: unknown key; did you mean "interval"?' in found


def test_malformed_host_names_name_the_key(tmp_path: Path) -> None:
    text = GOOD.replace("https://portal.example.vn/xay-dung-dang", "http://xn--/xay-dung-dang")
    text += '[websub]\nhub = "https://hub.xn--zz-.vn/"\n'
    found = problems(tmp_path, text)
    assert (
        'sources[1].url: invalid host name "xn--": Malformed A-label, no Punycode eligible content found'
        in found
    )
    assert 'websub.hub: invalid host name "hub.xn--zz-.vn": A-label must not end with a hyphen' in found
    assert len(found) == 2


def test_invalid_css_selector_names_the_key(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace('body = "div.content"', 'body = "div..content["'))
    assert len(found) == 1
    assert found[0].startswith('sources[1].html.body: invalid CSS selector "div..content["')


def test_html_rules_only_for_html_sources(tmp_path: Path) -> None:
    text = GOOD.replace('kind = "html"\n', "")
    assert 'sources[1].html: selectors only apply to sources with kind = "html"' in problems(tmp_path, text)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    found = problems(tmp_path, "[site\ntitle = 'x'")
    assert len(found) == 1
    assert found[0].startswith("invalid TOML")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path / "nope.toml", environ={})
    assert info.value.problems == [f"{tmp_path / 'nope.toml'}: no such configuration file"]


def test_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    s = config.load(None, environ={"SYNDICATION_CONFIG": str(path)})
    assert s.path == path


def test_secret_url_from_environment_never_in_messages(tmp_path: Path) -> None:
    text = GOOD.replace('url = "sqlite:///data/s.db"', 'url_env = "SYN_DB"')
    path = write(tmp_path, text)
    secret = "postgresql+psycopg://app:hunter2@db.example.org/syn"
    s = config.load(path, environ={"SYN_DB": secret})
    assert s.storage.url == secret
    assert "hunter2" not in display_url(s.storage.url) + repr(s)
    assert problems(tmp_path, text) == ["storage.url_env: environment variable SYN_DB is not set"]
    bad = config.load
    with pytest.raises(ConfigError) as info:
        bad(path, environ={"SYN_DB": "mysql://app:hunter2@db/syn"})
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert config.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "15", "m15", "15 phút", "0s", "1h 30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than zero"):
        config.parse_duration(text)


def test_sizes() -> None:
    assert config.parse_size("20MB") == 20_000_000
    assert config.parse_size("512KiB") == 524_288
    assert config.parse_size(1024) == 1024
    with pytest.raises(ValueError, match="size"):
        config.parse_size("lớn")


def test_bundled_config_is_valid() -> None:
    s = config.load(Path(__file__).parent.parent / "config" / "syndication.toml", environ={})
    assert {src.kind for src in s.sources} == {"feed", "html"}
    for src in s.sources:
        assert src.url.startswith("file:///")
        assert Path(src.url.removeprefix("file://")).is_file(), src.url


def test_feed_server_and_websub_settings(tmp_path: Path) -> None:
    text = GOOD + '[feeds]\nitems = 20\nttl = "30m"\nrights = "© Đảng bộ Khối"\nrefresh = "2s"\n'
    text += '[server]\nhost = "0.0.0.0"\nport = 9090\n[websub]\nhub = "https://hub.example.org/"\n'
    s = config.load(write(tmp_path, text), environ={})
    assert (s.feeds.items, s.feeds.ttl, s.feeds.rights) == (20, timedelta(minutes=30), "© Đảng bộ Khối")
    assert s.feeds.refresh == timedelta(seconds=2)
    assert s.feeds.websub_hub == "https://hub.example.org/"
    assert (s.server.host, s.server.port) == ("0.0.0.0", 9090)
    defaults = config.load(write(tmp_path, GOOD), environ={})
    assert (defaults.feeds.items, defaults.server.port, defaults.feeds.websub_hub) == (50, 8080, None)


def test_bad_feed_settings_name_their_keys(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        GOOD + '[feeds]\nitems = 0\nttl = "mãi"\n[server]\nport = 70000\n[websub]\nhub = "ftp://x"\n',
    )
    assert "feeds.items: must be between 1 and 1000, got 0" in found
    assert any(p.startswith("feeds.ttl: expected a duration") for p in found)
    assert "server.port: must be between 1 and 65535, got 70000" in found
    assert 'websub.hub: expected an http:// or https:// URL, got "ftp://x"' in found


def test_server_limits_proxies_and_admin_address(tmp_path: Path) -> None:
    text = GOOD + (
        '[server]\nport = 9090\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"]\n'
        'proxy_header = "Forwarded"\nrequest_timeout = "5s"\nmax_header_bytes = "16KiB"\n'
        'limit_concurrency = 50\nadmin_host = "0.0.0.0"\nadmin_port = 9100\n'
    )
    s = config.load(write(tmp_path, text), environ={}).server
    assert s.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32")
    assert (s.proxy_header, s.request_timeout, s.max_header_bytes) == (
        "forwarded",
        timedelta(seconds=5),
        16384,
    )
    assert (s.limit_concurrency, s.admin_host, s.admin_port) == (50, "0.0.0.0", 9100)
    d = config.load(write(tmp_path, GOOD), environ={}).server
    assert (d.trusted_proxies, d.proxy_header, d.admin_port) == ((), "x-forwarded-for", None)
    assert (d.request_timeout, d.max_header_bytes, d.limit_concurrency) == (
        timedelta(seconds=10),
        65536,
        1000,
    )


def test_bad_server_settings_name_their_keys(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        GOOD + '[server]\nport = 9090\ntrusted_proxies = ["10.0.0.1/8", "proxy.local", 7, "0.0.0.0/0"]\n'
        'proxy_header = "X-Real-IP"\nrequest_timeout = "0.5s"\nmax_header_bytes = "16MB"\n'
        "limit_concurrency = 0\nadmin_port = 9090\n",
    )
    assert sorted(found) == sorted(
        [
            'server.trusted_proxies[0]: "10.0.0.1/8" has host bits set: did you mean "10.0.0.0/8"?',
            'server.trusted_proxies[1]: "proxy.local" is not an IP address or a network such as "10.0.0.0/8"',
            "server.trusted_proxies[2]: expected an address or a network as a string, got 7 (int)",
            'server.trusted_proxies[3]: "0.0.0.0/0" trusts every address: clients could choose their own',
            "server.admin_port: must differ from server.port (9090)",
            'server.request_timeout: must be between "1s" and "10m", got "0.5s"',
            'server.max_header_bytes: must be between "1KiB" and "1MiB", got \'16MB\'',
            'server.proxy_header: expected "X-Forwarded-For" or "Forwarded", got "X-Real-IP"',
            "server.limit_concurrency: must be between 1 and 1000000, got 0",
        ]
    )
    assert problems(tmp_path, GOOD + '[server]\ntrusted_proxies = "127.0.0.1"\n') == [
        'server.trusted_proxies: expected a list such as ["10.0.0.0/8"], got "127.0.0.1" (a string)'
    ]


@pytest.mark.parametrize("slug", ["all", "source-tin"])
def test_feed_names_are_reserved(tmp_path: Path, slug: str) -> None:
    text = GOOD.replace('slug = "xay-dung-dang"', f'slug = "{slug}"').replace(
        'categories = ["xay-dung-dang"]', f'categories = ["{slug}"]'
    )
    found = problems(tmp_path, text)
    assert f'categories[0].slug: "{slug}" is reserved for feed names ("all", "source-<id>")' in found


def test_zero_is_not_taken_for_the_default(tmp_path: Path) -> None:
    found = problems(
        tmp_path, GOOD.replace('remove = [".other-news"]', 'remove = [".other-news"]\nmax_articles = 0')
    )
    assert found == ["sources[1].html.max_articles: must be between 1 and 500, got 0"]


DIGESTS = """
[mail]
transport = "smtp"
host = "smtp.example.org"
port = 587
username = "ban-tin"
password_env = "SYN_SMTP"
from_address = "ban-tin@example.org"
from_name = "Đảng bộ Khối"
rate = 20
[subscribe]
secret_env = "SYN_SECRET"
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
max_items = 30
[[digests]]
name = "weekly"
schedule = "0 8 * * mon"
period = "7d"
subject = "{digest} tuần – {site}"
"""


def test_mail_and_digests(tmp_path: Path) -> None:
    s = config.load(write(tmp_path, GOOD + DIGESTS), environ={"SYN_SMTP": "bí-mật", "SYN_SECRET": "x" * 32})
    assert s.mail.transport == "smtp"
    assert (s.mail.host, s.mail.port, s.mail.security, s.mail.rate) == (
        "smtp.example.org",
        587,
        "starttls",
        20.0,
    )
    assert s.mail.password == "bí-mật"
    assert "bí-mật" not in repr(s.mail)
    assert s.subscribe.secret == "x" * 32
    daily, weekly = s.digests
    assert (daily.title, daily.max_items, daily.period) == ("Bản tin hằng ngày", 30, timedelta(days=1))
    assert (weekly.title, weekly.period, weekly.subject) == (
        "weekly",
        timedelta(days=7),
        "{digest} tuần – {site}",
    )
    assert s.digest("weekly") == weekly
    assert s.mail.maildir == (tmp_path / "var" / "outbox").resolve()


def test_bad_mail_and_digests(tmp_path: Path) -> None:
    text = GOOD + DIGESTS.replace('"0 8 * * mon"', '"mỗi sáng thứ hai"').replace("port = 587", 'port = "587"')
    text += '[[digests]]\nname = "daily"\nschedule = "99 7 * * *"\nsubject = "{ngay}"\n'
    found = problems(tmp_path, text)
    assert "mail.password_env: environment variable SYN_SMTP is not set" in found
    assert "subscribe.secret_env: environment variable SYN_SECRET is not set" in found
    assert 'mail.port: expected a whole number, got "587" (a string)' in found
    assert any(p.startswith("digests[1].schedule: expected 5 cron fields") for p in found)
    assert 'digests[2].name: "daily" is used by another digest' in found
    assert any(p.startswith('digests[2].schedule: invalid cron expression "99 7 * * *"') for p in found)
    assert any(p.startswith("digests[2].subject: bad template") for p in found)


def test_arrays_of_tables_must_hold_tables(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        'categories = "Xây dựng Đảng"\nsources = [1]\n'
        'digests = [{ name = "daily", schedule = "0 7 * * *" }, "x"]\n' + GOOD.split("[[categories]]")[0],
    )
    assert "categories: expected an array of tables ([[categories]])" in found
    assert "sources[0]: expected a table" in found
    assert "digests[1]: expected a table" in found


def test_a_password_is_never_sent_in_clear_to_another_machine(tmp_path: Path) -> None:
    """``config check`` refuses ``security = "none"`` with a username unless the server is
    this machine: the password would cross the network in clear."""
    text = GOOD + DIGESTS.replace("port = 587", 'port = 25\nsecurity = "none"')
    path = write(tmp_path, text)
    env = {"SYN_SMTP": "bí-mật", "SYN_SECRET": "x" * 32}

    checked = syndication_with_env("config", "check", config=path, env=env)

    assert checked.returncode == 2
    assert checked.stderr.splitlines() == [
        f'{path}: mail.security: "none" with a username sends the SMTP password in clear to '
        'smtp.example.org: use "starttls" (port 587) or "tls" (port 465); "none" is only for a '
        'relay on this machine (host = "localhost", 127.0.0.1 or ::1)'
    ]
    assert "bí-mật" not in checked.stderr


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1"]
)
def test_security_none_with_a_username_is_fine_on_this_machine(tmp_path: Path, host: str) -> None:
    text = GOOD + DIGESTS.replace('host = "smtp.example.org"', f'host = "{host}"\nsecurity = "none"')
    s = config.load(write(tmp_path, text), environ={"SYN_SMTP": "bí-mật", "SYN_SECRET": "x" * 32})
    assert (s.mail.security, s.mail.username) == ("none", "ban-tin")


@pytest.mark.parametrize(
    "host", ["smtp.example.org", "10.0.0.5", "::2", "localhost.example.org", "128.0.0.1"]
)
def test_security_none_with_a_username_is_refused_elsewhere(tmp_path: Path, host: str) -> None:
    text = GOOD + DIGESTS.replace('host = "smtp.example.org"', f'host = "{host}"\nsecurity = "none"')
    environ = {"SYN_SMTP": "bí-mật", "SYN_SECRET": "x" * 32}
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text), environ=environ)
    assert [p.split(": ")[1] for p in info.value.problems] == ["mail.security"]
    # Without a username there is no password to give away.
    plain = text.replace('username = "ban-tin"\n', "").replace('password_env = "SYN_SMTP"\n', "")
    assert config.load(write(tmp_path, plain), environ=environ).mail.security == "none"


def test_parse_limits(tmp_path: Path) -> None:
    defaults = config.load(write(tmp_path, GOOD), environ={}).fetch
    assert (defaults.parse_timeout, defaults.parse_memory, defaults.max_content_html) == (
        30.0,
        1024**3,
        2_000_000,
    )
    text = GOOD + '[fetch]\nparse_timeout = "2m"\nparse_memory = "512MiB"\nmax_content_html = "1MB"\n'
    fetch = config.load(write(tmp_path, text), environ={}).fetch
    assert (fetch.parse_timeout, fetch.parse_memory, fetch.max_content_html) == (
        120.0,
        512 * 1024**2,
        1_000_000,
    )
    found = problems(
        tmp_path, GOOD + '[fetch]\nparse_timeout = "2h"\nparse_memory = "64MB"\nmax_content_html = "nhiều"\n'
    )
    assert 'fetch.parse_timeout: must be between "1s" and "1h", got "2h"' in found
    assert "fetch.parse_memory: must be at least 256 MiB, got 64 MB" in found
    assert any(p.startswith("fetch.max_content_html: expected a size") for p in found)


def test_readme_shows_every_fetch_key() -> None:
    from dataclasses import fields

    from syndication.config.settings import FetchSettings

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("[fetch]", 1)[1].split("\n[", 1)[0]
    assert [f.name for f in fields(FetchSettings) if f"\n{f.name} = " not in example] == []


def test_subscribe_limits_and_expiry(tmp_path: Path) -> None:
    env = {"SYN_SMTP": "x", "SYN_SECRET": "x" * 32}
    defaults = config.load(write(tmp_path, GOOD + DIGESTS), environ=env).subscribe
    assert (defaults.per_client_per_hour, defaults.per_address_per_day, defaults.confirmations_per_hour) == (
        10,
        3,
        100,
    )
    assert defaults.confirm_expiry == timedelta(days=7)

    text = GOOD + DIGESTS.replace(
        'secret_env = "SYN_SECRET"',
        'secret_env = "SYN_SECRET"\nconfirmations_per_hour = 40\nconfirm_expiry = "36h"',
    )
    s = config.load(write(tmp_path, text), environ=env).subscribe
    assert (s.confirmations_per_hour, s.confirm_expiry) == (40, timedelta(hours=36))


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        (
            "confirmations_per_hour = 0",
            "subscribe.confirmations_per_hour: must be between 1 and 10000, got 0",
        ),
        (
            'confirmations_per_hour = "100"',
            'subscribe.confirmations_per_hour: expected a whole number, got "100"',
        ),
        ('confirm_expiry = "30m"', 'subscribe.confirm_expiry: must be between "1h" and "90d", got "30m"'),
        ('confirm_expiry = "365d"', 'subscribe.confirm_expiry: must be between "1h" and "90d", got "365d"'),
        ('confirm_expiry = "một tuần"', "subscribe.confirm_expiry: expected a duration"),
        ("confirm_expiry = 7", "subscribe.confirm_expiry: expected a duration"),
        ("confirm_expiry_days = 7", "subscribe.confirm_expiry_days: unknown key"),
    ],
)
def test_bad_subscribe_settings(tmp_path: Path, setting: str, problem: str) -> None:
    text = GOOD + DIGESTS.replace('secret_env = "SYN_SECRET"', f'secret_env = "SYN_SECRET"\n{setting}')
    found = problems(tmp_path, text)  # (also the unset secrets: any(...) finds ours)
    assert any(p.startswith(problem) for p in found), found
