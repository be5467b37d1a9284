"""Load and validate the TOML configuration into frozen settings objects.

No business logic here: this module only reads one file, checks every key, and
reports *all* problems at once, each naming the file, the key and what is wrong
(``ConfigError``). Relative paths (``file:`` source URLs, SQLite files) are
resolved against the directory of the configuration file, so a config works the
same whatever the current directory is. Secrets are never written in the file:
a key ending in ``_env`` names the environment variable that holds the value.

The package: ``settings`` (the frozen objects), ``values`` (single values and the
problem collector), ``sections`` (one reader per table); ``load`` here ties them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syndication.errors import ConfigError

from .sections import (
    _categories,
    _digests,
    _feed_settings,
    _fetch_settings,
    _mail_settings,
    _retention_settings,
    _server_settings,
    _service_settings,
    _sources,
    _subscribe_settings,
)
from .settings import (
    Category,
    FeedSettings,
    FetchSettings,
    MailSettings,
    RetentionSettings,
    ServerSettings,
    ServiceSettings,
    Settings,
    SiteSettings,
    StorageSettings,
    SubscribeSettings,
)
from .values import (
    _Checker,
    _storage_url,
    cron_problem,
    parse_duration,
    parse_keep,
    parse_size,
    resolve_path,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "Category",
    "FeedSettings",
    "FetchSettings",
    "MailSettings",
    "RetentionSettings",
    "ServerSettings",
    "ServiceSettings",
    "Settings",
    "SiteSettings",
    "StorageSettings",
    "SubscribeSettings",
    "cron_problem",
    "load",
    "parse_duration",
    "parse_keep",
    "parse_size",
    "resolve_path",
]

DEFAULT_CONFIG = Path("config/syndication.toml")
CONFIG_ENV = "SYNDICATION_CONFIG"


def load(path: Path | str | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a configuration file.

    ``path`` defaults to ``$SYNDICATION_CONFIG``, then ``config/syndication.toml``.

    Raises:
        ConfigError: listing every problem found, each naming file and key.
    """
    env = os.environ if environ is None else environ
    file = Path(path) if path is not None else Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(file), [f"{file}: no such configuration file"]) from None
    except OSError as exc:
        raise ConfigError(str(file), [f"{file}: cannot read: {exc.strerror}"]) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), [f"{file}: not UTF-8 text (byte {exc.start})"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"{file}: invalid TOML: {exc}"]) from exc
    return _validate(data, file.resolve(), env)


def _validate(data: Mapping[str, Any], file: Path, env: Mapping[str, str]) -> Settings:
    c = _Checker(file)
    base = file.parent
    c.unknown(
        data,
        "",
        {
            "site",
            "storage",
            "fetch",
            "feeds",
            "server",
            "websub",
            "mail",
            "subscribe",
            "categories",
            "sources",
            "digests",
            "service",
            "retention",
        },
    )

    site_t = c.table(data, "site")
    c.unknown(site_t, "site.", {"title", "base_url", "language", "timezone", "description"})
    title = c.get(site_t, "site.", "title", str, "", required=True) or ""
    base_url = c.get(site_t, "site.", "base_url", str, "", required=True) or ""
    if base_url and urlsplit(base_url).scheme not in ("http", "https"):
        c.problem("site.base_url", f'expected an http:// or https:// URL, got "{base_url}"')
    timezone = c.get(site_t, "site.", "timezone", str, "Asia/Ho_Chi_Minh") or "Asia/Ho_Chi_Minh"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        c.problem(
            "site.timezone",
            f'unknown time zone "{timezone}" (expected an IANA name such as "Asia/Ho_Chi_Minh")',
        )
        timezone = "Asia/Ho_Chi_Minh"
    site = SiteSettings(
        title=title,
        base_url=base_url,
        language=c.get(site_t, "site.", "language", str, "vi") or "vi",
        timezone=timezone,
        description=c.get(site_t, "site.", "description", str, "") or "",
    )

    storage_t = c.table(data, "storage")
    c.unknown(storage_t, "storage.", {"url", "url_env"})
    url = c.get(storage_t, "storage.", "url", str, "sqlite:///../var/syndication.db") or ""
    url_env = c.get(storage_t, "storage.", "url_env", str)
    if url_env:
        if env.get(url_env):
            url = env[url_env]
        elif "url" not in storage_t:
            c.problem("storage.url_env", f"environment variable {url_env} is not set")
    try:
        url = _storage_url(url, base)
    except ValueError as exc:
        c.problem("storage.url_env" if url_env and env.get(url_env) else "storage.url", str(exc))
    storage = StorageSettings(url=url)

    fetch = _fetch_settings(c, c.table(data, "fetch"))
    feeds = _feed_settings(c, c.table(data, "feeds"), c.table(data, "websub"))
    server = _server_settings(c, c.table(data, "server"))
    mail = _mail_settings(c, c.table(data, "mail"), base, env)
    subscribe = _subscribe_settings(c, c.table(data, "subscribe"), env)
    categories = _categories(c, data.get("categories", []))
    sources = _sources(c, data.get("sources", []), {cat.slug for cat in categories}, base)
    digests = _digests(c, data.get("digests", []))
    if digests and base_url and urlsplit(base_url).scheme != "https":
        # Every digest carries its one-click unsubscribe link, which RFC 8058 wants on https.
        c.problem(
            "site.base_url",
            "digests need an https:// address (their one-click unsubscribe links are built on it), "
            f'got "{base_url}"',
        )
    service = _service_settings(c, c.table(data, "service"))
    retention = _retention_settings(c, c.table(data, "retention"))

    if c.problems:
        raise ConfigError(str(file), c.problems)
    return Settings(
        path=file,
        site=site,
        storage=storage,
        fetch=fetch,
        categories=categories,
        sources=sources,
        feeds=feeds,
        server=server,
        mail=mail,
        subscribe=subscribe,
        digests=digests,
        service=service,
        retention=retention,
    )
