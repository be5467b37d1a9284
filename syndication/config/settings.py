"""The settings objects a configuration file becomes: frozen, validated, with defaults.

No parsing here (``sections`` reads the file's tables into these); nothing reads them
but ``core`` and the shells, which hand components plain arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from syndication import __version__
from syndication.types import DigestSpec, SourceSpec


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
    url: str = field(repr=False)
    """May hold the password: shown to people only as ``syndication.store.display_url`` renders it."""


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
    """Processes that parse documents; 0 means one per CPU, 1 means parse in a thread
    (then ``parse_timeout`` and ``parse_memory`` do not apply)."""
    parse_timeout: float = 30.0
    """Seconds one document may take to parse; then its worker is killed and it fails."""
    parse_memory: int = 1024**3
    """Bytes of address space each parse process may use; more fails the document."""
    max_content_html: int = 2_000_000
    """Bytes of an article's sanitised HTML body that are kept; the rest is cut off."""


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
    """The web server of ``run`` and ``serve`` (``[server]``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    trusted_proxies: tuple[str, ...] = ()
    """Addresses and networks (CIDR) of the reverse proxies whose forwarding header is believed."""
    proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    """The header those proxies add the client to: ``X-Forwarded-For`` or ``Forwarded`` (RFC 7239)."""
    request_timeout: timedelta = timedelta(seconds=10)
    """How long a client has to send a whole request (headers and body), from its first byte
    or, on a new connection, from the connection."""
    max_header_bytes: int = 64 * 1024
    """The request line and headers of one request, at most."""
    limit_concurrency: int = 1000
    """Connections served at once; a request on one more gets 503."""
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None
    """Where ``/healthz`` and ``/metrics`` are served instead of the public port; None: on it."""


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
    """The public subscription pages (``[subscribe]``); the limits are kept in the store,
    shared by every process of the site."""

    secret: str | None = field(default=None, repr=False)
    """Signs forms (CSRF) and rate-limit keys; from the variable named by ``secret_env``."""
    per_client_per_hour: int = 10
    """Subscribe requests per client (an IPv4 address, an IPv6 /64)."""
    per_address_per_day: int = 3
    """Confirmation e-mails per mailbox (Gmail dots, ``googlemail.com`` and ``+tags`` count as one)."""
    confirmations_per_hour: int = 100
    """Confirmation e-mails per hour over the whole site."""
    confirm_expiry: timedelta = timedelta(days=7)
    """How long a confirmation link works; the daily clean-up then deletes the unconfirmed."""


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
