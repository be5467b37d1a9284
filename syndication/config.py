"""Load and validate the TOML configuration into frozen settings objects.

No business logic here: this module only reads one file, checks every key, and
reports *all* problems at once, each naming the file, the key and what is wrong
(``ConfigError``). Relative paths (``file:`` source URLs, SQLite files) are
resolved against the directory of the configuration file, so a config works the
same whatever the current directory is. Secrets are never written in the file:
a key ending in ``_env`` names the environment variable that holds the value.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syndication import __version__
from syndication.errors import ConfigError
from syndication.types import DigestSpec, HtmlRules, SourceSpec

DEFAULT_CONFIG = Path("config/syndication.toml")
CONFIG_ENV = "SYNDICATION_CONFIG"

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteSettings:
    title: str
    base_url: str
    language: str = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    description: str = ""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageSettings:
    url: str

    @property
    def display_url(self) -> str:
        """The URL without any password, for logs and messages."""
        return redact_url(self.url)


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSettings:
    user_agent: str = f"syndication/{__version__} (+https://github.com/syndication)"
    timeout: float = 20.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    concurrency: int = 16
    per_host: int = 4
    backoff_cap: timedelta = timedelta(hours=6)
    max_lower_bound: timedelta = timedelta(days=1)
    parse_workers: int = 0
    """Processes that parse documents; 0 means one per CPU, 1 means parse in a thread."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSettings:
    items: int = 50
    """Items per feed page; older items are on ``?page=2`` and on."""
    ttl: timedelta = timedelta(minutes=15)
    """What feeds tell readers about how often to poll."""
    rights: str = ""
    """Copyright line; empty means "© <site title>"."""
    refresh: timedelta = timedelta(seconds=5)
    """How often the web server checks the store for changes made by other processes."""
    cache_max_age: timedelta = timedelta(minutes=5)
    """``Cache-Control: max-age`` on feed responses."""
    websub_hub: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True, kw_only=True)
class MailSettings:
    transport: Literal["maildir", "smtp"] = "maildir"
    maildir: Path = Path("var/outbox")
    """Resolved against the configuration file's folder."""
    from_address: str = "ban-tin@example.org"
    from_name: str = ""
    """Empty means the site title."""
    reply_to: str | None = None
    host: str = "localhost"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    """Read from the environment variable named by ``password_env``; never from the file."""
    pool: int = 4
    rate: float = 0.0
    """Messages per second over all connections; 0 means no limit."""
    timeout: float = 30.0
    retry_base: timedelta = timedelta(minutes=5)
    retry_max: timedelta = timedelta(hours=6)
    max_attempts: int = 8
    bounce_threshold: int = 3
    lease: timedelta = timedelta(minutes=10)
    unsubscribe_mailto: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_key: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribeSettings:
    secret: str | None = field(default=None, repr=False)
    """Signs forms (CSRF) and rate-limit keys; from the variable named by ``secret_env``."""
    per_client_per_hour: int = 10
    per_address_per_day: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    """How ``syndication run`` and ``syndication worker`` share out the work (``[service]``)."""

    workers: bool = True
    """Whether ``run`` also polls sources and sends deliveries (``--no-workers`` overrides)."""
    tick: timedelta = timedelta(seconds=5)
    """How often an idle worker looks in the store for work another process made due."""
    poll_lease: timedelta = timedelta(minutes=15)
    """How long a worker holds a source it polls; a dead worker's source is polled again after it."""
    jitter: float = 0.1
    """Each source's next poll is moved by up to this fraction of its interval, at random."""
    stop_timeout: timedelta = timedelta(seconds=30)
    """How long a stop waits for polls and SMTP transactions in flight."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionSettings:
    """What the daily clean-up removes (``[retention]``); ``None`` keeps for ever."""

    articles: timedelta | None = timedelta(days=365)
    """Articles published (and first seen) longer ago are deleted, and not stored again."""
    deliveries: timedelta | None = timedelta(days=180)
    """Deliveries of issues older than this are deleted; the issue keeps its per-branch totals."""
    schedule: str = "30 2 * * *"
    """When the clean-up runs (cron, site time zone)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Category:
    slug: str
    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    path: Path
    site: SiteSettings
    storage: StorageSettings
    fetch: FetchSettings
    categories: tuple[Category, ...]
    sources: tuple[SourceSpec, ...]
    feeds: FeedSettings = FeedSettings()
    server: ServerSettings = ServerSettings()
    mail: MailSettings = MailSettings()
    subscribe: SubscribeSettings = SubscribeSettings()
    digests: tuple[DigestSpec, ...] = ()
    service: ServiceSettings = ServiceSettings()
    retention: RetentionSettings = RetentionSettings()

    def digest(self, name: str) -> DigestSpec | None:
        return next((d for d in self.digests if d.name == name), None)

    def source(self, source_id: str) -> SourceSpec | None:
        return next((s for s in self.sources if s.id == source_id), None)


def redact_url(url: str) -> str:
    """Replace the password of a URL (``user:secret@host``) with ``***``."""
    return re.sub(r"(//[^/:@]*):[^@/]*@", r"\1:***@", url)


# --- small value parsers: each returns the value or raises ValueError with a message ---

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> timedelta:
    """``"15m"``, ``"1h30m"``, ``"45s"``, ``"2d"`` to a timedelta."""
    if not isinstance(value, str):
        raise ValueError(f'expected a duration such as "15m" or "1h30m", got {value!r}')
    text = value.strip().lower().replace(" ", "")
    pos, seconds = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f'expected a duration such as "15m" or "1h30m", got {value!r}')
    if seconds <= 0:
        raise ValueError(f"must be longer than zero, got {value!r}")
    return timedelta(seconds=seconds)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$")
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(value: object) -> int:
    """``"20MB"``, ``"512KiB"`` or a whole number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value.strip().lower()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f'expected a size such as "20MB" or a number of bytes, got {value!r}')
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise ValueError(f"must be larger than zero, got {value!r}")
    return size


class _Checker:
    """Collects problems while reading one table; every problem names file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a table ([{key}]), got {type(value).__name__}")
            return {}
        return value

    def tables(self, items: object, key: str, allowed: set[str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """The tables of an array of tables (``[[key]]``) with their key prefix
        (``key[3].``), each checked for unknown keys; reports what is not a table."""
        if not isinstance(items, list):
            self.problem(key, f"expected an array of tables ([[{key}]])")
            return
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                self.problem(f"{key}[{i}]", "expected a table")
                continue
            prefix = f"{key}[{i}]."
            self.unknown(item, prefix, allowed)
            yield prefix, item

    def unknown(self, data: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        for name in data:
            if name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = (
                    f'; did you mean "{close[0]}"?'
                    if close
                    else f"; known keys: {', '.join(sorted(allowed))}"
                )
                self.problem(f"{prefix}{name}", f"unknown key{hint}")

    def get(
        self,
        data: Mapping[str, Any],
        prefix: str,
        name: str,
        kind: type[T] | tuple[type, ...],
        default: T | None = None,
        *,
        required: bool = False,
    ) -> T | None:
        key = f"{prefix}{name}"
        if name not in data:
            if required:
                self.problem(key, "is required")
            return default
        value = data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = not (isinstance(value, bool) and bool not in kinds) and isinstance(value, kinds)
        if not ok:
            want = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.problem(key, f"expected {want}, got {_describe(value)}")
            return default
        return value  # type: ignore[no-any-return]

    def convert(
        self, data: Mapping[str, Any], prefix: str, name: str, parse: Callable[[object], T], default: T
    ) -> T:
        if name not in data:
            return default
        try:
            return parse(data[name])
        except ValueError as exc:
            self.problem(f"{prefix}{name}", str(exc))
            return default


_TYPE_NAMES = {
    str: "a string",
    int: "a whole number",
    bool: "true or false",
    list: "a list",
    float: "a number",
}


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f'"{value}" (a string)'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return f"{value!r} ({type(value).__name__})"


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def resolve_path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _source_url(value: str, base: Path) -> str:
    """Check a source URL and make a relative ``file:`` URL absolute against ``base``."""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f'"{value}" has no host name')
        return value
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f'"{value}": file: URLs must not name a host')
        raw = value[len("file:") :]
        if raw.startswith("//"):
            raw = raw[2:]
            raw = raw[raw.index("/") :] if "/" in raw else "/"
        return resolve_path(raw, base).as_uri()
    raise ValueError(f'expected an http://, https:// or file: URL, got "{value}"')


def _storage_url(value: str, base: Path) -> str:
    """Resolve a relative SQLite path against ``base``; other URLs pass unchanged."""
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        rest = value[len("sqlite:///") :]
        if rest and not rest.startswith(":memory:"):
            path, _, query = rest.partition("?")
            url = "sqlite:///" + str(resolve_path(path, base))
            return f"{url}?{query}" if query else url
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
        raise ValueError(f'expected a sqlite:/// or postgresql+psycopg:// URL, got "{redact_url(value)}"')
    return value


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


def _fetch_settings(c: _Checker, t: Mapping[str, Any]) -> FetchSettings:
    d = FetchSettings()
    p = "fetch."
    c.unknown(
        t,
        p,
        {
            "user_agent",
            "timeout",
            "max_bytes",
            "max_redirects",
            "concurrency",
            "per_host",
            "backoff_cap",
            "max_lower_bound",
            "parse_workers",
        },
    )

    def count(name: str, default: int, low: int, high: int) -> int:
        value = c.get(t, p, name, int, default)
        if value is None:
            return default
        if not low <= value <= high:
            c.problem(p + name, f"must be between {low} and {high}, got {value}")
            return default
        return value

    return FetchSettings(
        user_agent=c.get(t, p, "user_agent", str, d.user_agent) or d.user_agent,
        timeout=c.convert(t, p, "timeout", parse_duration, timedelta(seconds=d.timeout)).total_seconds(),
        max_bytes=c.convert(t, p, "max_bytes", parse_size, d.max_bytes),
        max_redirects=count("max_redirects", d.max_redirects, 0, 20),
        concurrency=count("concurrency", d.concurrency, 1, 256),
        per_host=count("per_host", d.per_host, 1, 64),
        backoff_cap=c.convert(t, p, "backoff_cap", parse_duration, d.backoff_cap),
        max_lower_bound=c.convert(t, p, "max_lower_bound", parse_duration, d.max_lower_bound),
        parse_workers=count("parse_workers", d.parse_workers, 0, 64),
    )


def _feed_settings(c: _Checker, t: Mapping[str, Any], websub: Mapping[str, Any]) -> FeedSettings:
    d = FeedSettings()
    p = "feeds."
    c.unknown(t, p, {"items", "ttl", "rights", "refresh", "cache_max_age"})
    items = c.get(t, p, "items", int, d.items)
    if items is None or not 1 <= items <= 1000:
        c.problem(p + "items", f"must be between 1 and 1000, got {items}")
        items = d.items
    c.unknown(websub, "websub.", {"hub"})
    hub = c.get(websub, "websub.", "hub", str)
    if hub is not None and urlsplit(hub).scheme not in ("http", "https"):
        c.problem("websub.hub", f'expected an http:// or https:// URL, got "{hub}"')
        hub = None
    return FeedSettings(
        items=items,
        ttl=c.convert(t, p, "ttl", parse_duration, d.ttl),
        rights=c.get(t, p, "rights", str, "") or "",
        refresh=c.convert(t, p, "refresh", parse_duration, d.refresh),
        cache_max_age=c.convert(t, p, "cache_max_age", parse_duration, d.cache_max_age),
        websub_hub=hub,
    )


def _secret(c: _Checker, t: Mapping[str, Any], key: str, env: Mapping[str, str]) -> str | None:
    """A secret named by ``<key>_env``: the variable must be set when the key is given."""
    name = c.get(t, key.rsplit(".", 1)[0] + ".", key.rsplit(".", 1)[1] + "_env", str)
    if name is None:
        return None
    value = env.get(name)
    if not value:
        c.problem(f"{key}_env", f"environment variable {name} is not set")
        return None
    return value


_MAIL_KEYS = {
    "transport", "maildir", "from_address", "from_name", "reply_to", "host", "port", "security",
    "username", "password_env", "pool", "rate", "timeout", "retry_base", "retry_max", "max_attempts",
    "bounce_threshold", "lease", "unsubscribe_mailto", "dkim_selector", "dkim_domain", "dkim_key",
}  # fmt: skip


def _mail_settings(c: _Checker, t: Mapping[str, Any], base: Path, env: Mapping[str, str]) -> MailSettings:
    d = MailSettings()
    p = "mail."
    c.unknown(t, p, _MAIL_KEYS)
    transport = c.get(t, p, "transport", str, d.transport)
    if transport not in ("maildir", "smtp"):
        c.problem(p + "transport", f'expected "maildir" or "smtp", got "{transport}"')
        transport = d.transport
    security = c.get(t, p, "security", str, d.security)
    if security not in ("none", "starttls", "tls"):
        c.problem(p + "security", f'expected "none", "starttls" or "tls", got "{security}"')
        security = d.security
    addresses = {}
    for name in ("from_address", "reply_to", "unsubscribe_mailto"):
        value = c.get(t, p, name, str, getattr(d, name))
        if value is not None and not _EMAIL.match(value):
            c.problem(p + name, f'"{value}" is not an e-mail address')
        addresses[name] = value
    port = c.get(t, p, "port", int, d.port)
    if port is None or not 1 <= port <= 65535:
        c.problem(p + "port", f"must be between 1 and 65535, got {port}")
        port = d.port
    rate = c.get(t, p, "rate", (int, float), d.rate)
    if rate is None or rate < 0:
        c.problem(p + "rate", f"must be 0 (no limit) or more, got {rate}")
        rate = d.rate
    counts: dict[str, int] = {}
    for name, low, high in (("pool", 1, 64), ("max_attempts", 1, 100), ("bounce_threshold", 1, 100)):
        value = c.get(t, p, name, int, getattr(d, name))
        if value is None or not low <= value <= high:
            c.problem(p + name, f"must be between {low} and {high}, got {value}")
            value = getattr(d, name)
        counts[name] = value
    dkim = {name: c.get(t, p, name, str) for name in ("dkim_selector", "dkim_domain", "dkim_key")}
    if any(dkim.values()) and not all(dkim.values()):
        c.problem(p + "dkim_key", "DKIM needs dkim_selector, dkim_domain and dkim_key together")
    dkim_key = resolve_path(dkim["dkim_key"], base) if dkim["dkim_key"] else None
    if dkim_key is not None and not dkim_key.is_file():
        c.problem(p + "dkim_key", f"no such file: {dkim_key}")
    password = _secret(c, t, "mail.password", env)
    return MailSettings(
        transport="smtp" if transport == "smtp" else "maildir",
        maildir=resolve_path(c.get(t, p, "maildir", str, "../var/outbox") or "../var/outbox", base),
        from_address=addresses["from_address"] or d.from_address,
        from_name=c.get(t, p, "from_name", str, "") or "",
        reply_to=addresses["reply_to"],
        host=c.get(t, p, "host", str, d.host) or d.host,
        port=port,
        security="tls" if security == "tls" else "none" if security == "none" else "starttls",
        username=c.get(t, p, "username", str),
        password=password,
        pool=counts["pool"],
        rate=float(rate),
        timeout=c.convert(t, p, "timeout", parse_duration, timedelta(seconds=d.timeout)).total_seconds(),
        retry_base=c.convert(t, p, "retry_base", parse_duration, d.retry_base),
        retry_max=c.convert(t, p, "retry_max", parse_duration, d.retry_max),
        max_attempts=counts["max_attempts"],
        bounce_threshold=counts["bounce_threshold"],
        lease=c.convert(t, p, "lease", parse_duration, d.lease),
        unsubscribe_mailto=addresses["unsubscribe_mailto"],
        dkim_selector=dkim["dkim_selector"],
        dkim_domain=dkim["dkim_domain"],
        dkim_key=dkim_key,
    )


def _subscribe_settings(c: _Checker, t: Mapping[str, Any], env: Mapping[str, str]) -> SubscribeSettings:
    d = SubscribeSettings()
    p = "subscribe."
    c.unknown(t, p, {"secret_env", "per_client_per_hour", "per_address_per_day"})
    limits: dict[str, int] = {}
    for name in ("per_client_per_hour", "per_address_per_day"):
        value = c.get(t, p, name, int, getattr(d, name))
        if value is None or not 1 <= value <= 10000:
            c.problem(p + name, f"must be between 1 and 10000, got {value}")
            value = getattr(d, name)
        limits[name] = value
    return SubscribeSettings(secret=_secret(c, t, "subscribe.secret", env), **limits)


_DIGEST_KEYS = {"name", "title", "schedule", "subject", "max_items", "skip_empty", "period", "grace"}
_DIGEST_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _digests(c: _Checker, items: object) -> tuple[DigestSpec, ...]:
    result: list[DigestSpec] = []
    seen: set[str] = set()
    for p, item in c.tables(items, "digests", _DIGEST_KEYS):
        name = c.get(item, p, "name", str, required=True)
        schedule = c.get(item, p, "schedule", str, required=True)
        if name is not None:
            if not _DIGEST_NAME.match(name):
                c.problem(p + "name", f'"{name}" must be lower-case letters, digits, "-" and "_"')
            elif name in seen:
                c.problem(p + "name", f'"{name}" is used by another digest')
            seen.add(name)
        if schedule is not None:
            problem = cron_problem(schedule)
            if problem:
                c.problem(p + "schedule", problem)
        max_items = c.get(item, p, "max_items", int, 50)
        if max_items is None or not 1 <= max_items <= 500:
            c.problem(p + "max_items", f"must be between 1 and 500, got {max_items}")
            max_items = 50
        subject = c.get(item, p, "subject", str, "{digest} – {site} – {date}") or "{digest} – {site} – {date}"
        try:
            subject.format(site="", digest="", date="", count=0)
        except (KeyError, IndexError, ValueError) as exc:
            c.problem(
                p + "subject",
                f"bad template {subject!r}: use {{site}}, {{digest}}, {{date}}, {{count}} ({exc})",
            )
        if name is None or schedule is None:
            continue
        result.append(
            DigestSpec(
                name=name,
                title=c.get(item, p, "title", str, "") or name,
                schedule=schedule,
                subject=subject,
                max_items=max_items,
                skip_empty=bool(c.get(item, p, "skip_empty", bool, True)),
                period=c.convert(item, p, "period", parse_duration, timedelta(days=1)),
                grace=c.convert(item, p, "grace", parse_duration, timedelta(hours=1)),
            )
        )
    return tuple(result)


def cron_problem(expression: str) -> str | None:
    """Why a 5-field cron expression is invalid, or ``None``."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            f'expected 5 cron fields (minute hour day month weekday) such as "0 7 * * *", got "{expression}"'
        )
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression)
    except ValueError as exc:
        return f'invalid cron expression "{expression}": {exc}'
    return None


def _service_settings(c: _Checker, t: Mapping[str, Any]) -> ServiceSettings:
    d = ServiceSettings()
    p = "service."
    c.unknown(t, p, {"workers", "tick", "poll_lease", "jitter", "stop_timeout"})
    jitter = float(c.get(t, p, "jitter", (int, float), d.jitter) or 0)
    if not 0 <= jitter <= 0.5:
        c.problem(p + "jitter", f"must be a fraction between 0 and 0.5, got {jitter}")
        jitter = d.jitter
    return ServiceSettings(
        workers=bool(c.get(t, p, "workers", bool, d.workers)),
        tick=c.convert(t, p, "tick", parse_duration, d.tick),
        poll_lease=c.convert(t, p, "poll_lease", parse_duration, d.poll_lease),
        jitter=jitter,
        stop_timeout=c.convert(t, p, "stop_timeout", parse_duration, d.stop_timeout),
    )


def parse_keep(value: object) -> timedelta | None:
    """A retention period: a duration, or ``"forever"`` (also ``0``) to keep everything."""
    # Not ``false``: a boolean equals 0 in Python, but "keep = false" says nothing clear.
    if (value == 0 and not isinstance(value, bool)) or (
        isinstance(value, str) and value.strip().lower() in ("forever", "0")
    ):
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f'expected a duration such as "365d", or "forever", got {value!r}') from None


def _retention_settings(c: _Checker, t: Mapping[str, Any]) -> RetentionSettings:
    d = RetentionSettings()
    p = "retention."
    c.unknown(t, p, {"articles", "deliveries", "schedule"})
    schedule = c.get(t, p, "schedule", str, d.schedule) or d.schedule
    problem = cron_problem(schedule)
    if problem:
        c.problem(p + "schedule", problem)
        schedule = d.schedule
    articles = c.convert(t, p, "articles", parse_keep, d.articles)
    if articles is not None and articles < timedelta(days=1):
        c.problem(p + "articles", 'must be at least one day (or "forever")')
        articles = d.articles
    return RetentionSettings(
        articles=articles,
        deliveries=c.convert(t, p, "deliveries", parse_keep, d.deliveries),
        schedule=schedule,
    )


def _server_settings(c: _Checker, t: Mapping[str, Any]) -> ServerSettings:
    d = ServerSettings()
    p = "server."
    c.unknown(t, p, {"host", "port"})
    port = c.get(t, p, "port", int, d.port)
    if port is None or not 1 <= port <= 65535:
        c.problem(p + "port", f"must be between 1 and 65535, got {port}")
        port = d.port
    return ServerSettings(host=c.get(t, p, "host", str, d.host) or d.host, port=port)


def _categories(c: _Checker, items: object) -> tuple[Category, ...]:
    result: list[Category] = []
    seen: set[str] = set()
    for p, item in c.tables(items, "categories", {"slug", "title"}):
        slug = c.get(item, p, "slug", str, required=True)
        title = c.get(item, p, "title", str, required=True)
        if slug is None or title is None:
            continue
        if not _SLUG.match(slug):
            c.problem(
                p + "slug", f'"{slug}" must be lower-case letters, digits and dashes (e.g. "xay-dung-dang")'
            )
        elif slug in seen:
            c.problem(p + "slug", f'"{slug}" is used by another category')
        elif slug == "all" or slug.startswith("source-"):
            c.problem(p + "slug", f'"{slug}" is reserved for feed names ("all", "source-<id>")')
        seen.add(slug)
        result.append(Category(slug=slug, title=title.strip()))
    return tuple(result)


_SOURCE_KEYS = {"id", "url", "kind", "categories", "interval", "allow_private_network", "title", "html"}
_HTML_KEYS = {"links", "title", "lead", "body", "author", "date", "image", "remove", "max_articles"}


def _sources(c: _Checker, items: object, slugs: set[str], base: Path) -> tuple[SourceSpec, ...]:
    result: list[SourceSpec] = []
    seen: set[str] = set()
    for p, item in c.tables(items, "sources", _SOURCE_KEYS):
        source_id = c.get(item, p, "id", str, required=True)
        raw_url = c.get(item, p, "url", str, required=True)
        kind = c.get(item, p, "kind", str, "feed")
        if source_id is not None:
            if not _SOURCE_ID.match(source_id):
                c.problem(p + "id", f'"{source_id}" must be lower-case letters, digits, "-" and "_"')
            elif source_id in seen:
                c.problem(p + "id", f'"{source_id}" is used by another source')
            seen.add(source_id)
        if kind not in ("feed", "html"):
            c.problem(p + "kind", f'expected "feed" or "html", got "{kind}"')
            kind = "feed"
        url = ""
        if raw_url is not None:
            try:
                url = _source_url(raw_url, base)
            except ValueError as exc:
                c.problem(p + "url", str(exc))
        cats = c.get(item, p, "categories", list, [])
        cat_tuple: tuple[str, ...] = ()
        if cats is not None:
            for j, slug in enumerate(cats):
                if not isinstance(slug, str):
                    c.problem(f"{p}categories[{j}]", f"expected a category slug, got {_describe(slug)}")
                elif slug not in slugs:
                    known = ", ".join(sorted(slugs)) or "none defined"
                    c.problem(f"{p}categories[{j}]", f'unknown category "{slug}" (known: {known})')
            cat_tuple = tuple(dict.fromkeys(s for s in cats if isinstance(s, str)))
        interval = c.convert(item, p, "interval", parse_duration, timedelta(minutes=15))
        if interval < timedelta(minutes=1):
            c.problem(p + "interval", "must be at least 1m (be polite to the publisher)")
        html = _html_rules(c, item, p, kind)
        if source_id is None or raw_url is None:
            continue
        result.append(
            SourceSpec(
                id=source_id,
                url=url,
                kind="html" if kind == "html" else "feed",
                categories=cat_tuple,
                interval=interval,
                allow_private_network=bool(c.get(item, p, "allow_private_network", bool, False)),
                html=html,
                title=c.get(item, p, "title", str),
            )
        )
    return tuple(result)


def _html_rules(c: _Checker, item: Mapping[str, Any], p: str, kind: str | None) -> HtmlRules:
    if "html" not in item:
        return HtmlRules()
    t = c.table(item, p + "html")
    if kind != "html":
        c.problem(p + "html", 'selectors only apply to sources with kind = "html"')
    hp = p + "html."
    c.unknown(t, hp, _HTML_KEYS)
    selectors: dict[str, str | None] = {}
    for name in ("links", "title", "lead", "body", "author", "date", "image"):
        value = c.get(t, hp, name, str)
        if value is not None:
            _check_selector(c, hp + name, value)
        selectors[name] = value
    remove = c.get(t, hp, "remove", list, []) or []
    removes: list[str] = []
    for j, sel in enumerate(remove):
        if isinstance(sel, str):
            _check_selector(c, f"{hp}remove[{j}]", sel)
            removes.append(sel)
        else:
            c.problem(f"{hp}remove[{j}]", f"expected a CSS selector string, got {_describe(sel)}")
    max_articles = c.get(t, hp, "max_articles", int, 30)
    if max_articles is None or not 1 <= max_articles <= 500:
        c.problem(hp + "max_articles", f"must be between 1 and 500, got {max_articles}")
        max_articles = 30
    return HtmlRules(
        links=selectors["links"],
        title=selectors["title"],
        lead=selectors["lead"],
        body=selectors["body"],
        author=selectors["author"],
        date=selectors["date"],
        image=selectors["image"],
        remove=tuple(removes),
        max_articles=max_articles,
    )


def _check_selector(c: _Checker, key: str, selector: str) -> None:
    # cssselect is a dependency of the html parser; importing it here keeps the
    # error at load time, where it names the key, instead of at the first poll.
    from cssselect import GenericTranslator, SelectorError

    try:
        GenericTranslator().css_to_xpath(selector)
    except SelectorError as exc:
        c.problem(key, f'invalid CSS selector "{selector}": {exc}')
