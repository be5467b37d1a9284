"""Values that cross module boundaries: frozen, slotted, keyword-only dataclasses.

The stages of an article's journey have their own names:
``FetchRequest`` -> ``FetchResult`` (bytes from a URL) -> ``ParsedDocument``
holding ``ArticleData`` (parsed and normalised, not yet stored) -> ``Article``
(stored, with an id). Every ``datetime`` here is timezone-aware UTC.

Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware UTC. Injected; never read the wall clock directly."""

SourceKind = Literal["feed", "html"]
PollStatus = Literal["new", "updated", "unchanged", "not_modified", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HtmlRules:
    """How to read a portal that has no feed: CSS selectors, as data.

    ``None`` for a selector means "use the built-in default / extractor".
    """

    links: str | None = None
    """On the listing page: selector of ``<a>`` elements (or their containers) leading to articles."""
    title: str | None = None
    lead: str | None = None
    """The sapo: a short lead paragraph before the body."""
    body: str | None = None
    author: str | None = None
    date: str | None = None
    image: str | None = None
    remove: tuple[str, ...] = ()
    """Selectors removed from the body before it is kept (in addition to the built-in ones)."""
    max_articles: int = 30
    """How many links from the listing page are followed on one poll."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSpec:
    """A source as configured: what to pull, how often, into which categories."""

    id: str
    url: str
    kind: SourceKind
    categories: tuple[str, ...]
    interval: timedelta
    allow_private_network: bool = False
    html: HtmlRules = field(default_factory=HtmlRules)
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchRequest:
    url: str
    etag: str | None = None
    last_modified: str | None = None
    allow_private_network: bool = False
    accept: str = "*/*"
    listing: str | None = None
    """The listing page whose link ``url`` is, if it is one: a ``file:`` URL is then read
    only when it leads (percent-decoded, ``..`` and symlinks resolved) into the folder of
    a ``file:`` listing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """What a fetch returned. ``content`` is already decompressed (and capped)."""

    url: str
    """The final URL, after redirects."""
    status: int
    """200 (or another 2xx) with content, or 304 with empty content."""
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response headers, names lower-cased."""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    """The media type without parameters, lower-cased, e.g. ``application/rss+xml``."""
    charset: str | None = None
    """The charset the server declared in Content-Type, if any (it may be wrong)."""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True, kw_only=True)
class ArticleData:
    """One article as parsed and normalised from a source: NFC text, sanitised HTML,
    absolute URLs, UTC dates. Not yet stored."""

    guid: str | None
    """The source's own identifier (RSS guid, Atom id, JSON Feed id), if it gave one."""
    url: str | None
    """Absolute http(s) link to the article page."""
    title: str
    summary: str = ""
    """Plain text: the lead (sapo) or the source's summary, without markup."""
    content_html: str = ""
    """Sanitised HTML body with absolute links."""
    author: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    image_url: str | None = None
    tags: tuple[str, ...] = ()
    """Categories the source itself gave the article (not our category slugs)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ArticleKeys:
    """Keys derived from an ``ArticleData`` for identity, dedup and search (see ``ingest.identity``)."""

    identity: str
    """``guid:<guid>`` (global when the guid is a URL or tag: URI, else ``guid:<source>:<guid>``),
    else ``url:<canonical link>``, else ``hash:<sha256 of title and body>``."""
    title_key: str
    """``text.tone_key`` of the title: equal titles up to tone placement, case and spacing."""
    body_key: str
    """``text.search_key`` of the body text: compared with ``text.similarity`` for near-duplicates."""
    search_text: str
    """``text.search_key`` of title, summary, author and body text: what ``--search`` matches."""
    content_hash: str
    """sha256 over the displayed fields: tells whether a stored article changed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyedArticle:
    data: ArticleData
    keys: ArticleKeys


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedDocument:
    """A parsed source document (a feed, or a set of portal pages)."""

    title: str = ""
    link: str | None = None
    ttl: timedelta | None = None
    """RSS ``ttl``: how long the publisher says the document may be cached."""
    articles: tuple[ArticleData, ...] = ()
    warnings: tuple[str, ...] = ()
    """Problems that did not stop parsing (malformed XML parsed as far as it goes, a stripped DTD...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Article:
    """An article as stored."""

    id: int
    identity: str
    """The dedup key: ``guid:...``, ``url:...`` or ``hash:...``."""
    guid: str | None
    url: str | None
    title: str
    summary: str
    content_html: str
    author: str
    published: datetime
    """The published date, or the first-seen time when the source gave none."""
    updated: datetime
    first_seen: datetime
    image_url: str | None
    source_id: str
    """The source it was first seen in."""
    categories: tuple[str, ...]
    duplicate_of: int | None = None
    """Set when this is the same story republished elsewhere; the canonical article's id."""
    sources: tuple[str, ...] = ()
    """Every source that listed it, sorted (``source_id`` among them)."""
    dated: bool = True
    """Whether ``published`` is the publisher's own date: one the source gave, not in the
    future. False when the store put in ``first_seen`` instead (no date, or a future one)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceState:
    """What the store remembers of a source between polls."""

    id: str
    url: str
    kind: SourceKind
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_warning: str | None = None
    """The warnings of the last poll that read the source (not a 304, not an error), a line each."""
    error_count: int = 0
    next_attempt: datetime | None = None
    article_count: int = 0
    started: datetime | None = None
    """When the source first brought articles (its backlog was first seen then); None
    before that, and again after its URL changed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PollRecord:
    """The outcome of one poll of one source, as the store persists it."""

    source_id: str
    attempted: datetime
    ok: bool
    next_attempt: datetime
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    """Set when not ok."""
    error_count: int = 0
    """Consecutive failures including this one (0 when ok)."""
    keep_validators: bool = False
    """True when the poll was a 304 or an error: the stored validators stay as they were."""
    warnings: tuple[str, ...] = ()
    """Problems that did not stop the poll; they replace the stored ones unless ``keep_validators``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PollResult:
    """What one poll did, for people: per-source summary line."""

    source_id: str
    status: PollStatus
    counts: SaveCounts = SaveCounts()
    error: str | None = None
    warnings: tuple[str, ...] = ()
    next_attempt: datetime | None = None


# --- feeds we publish ---------------------------------------------------------------

FeedFormat = Literal["rss", "atom", "json"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """What every feed says about the site (from ``[site]`` and ``[feeds]``)."""

    title: str
    link: str
    """The site's public address (``site.base_url``), with a trailing slash."""
    description: str
    language: str
    rights: str
    """Copyright line, e.g. "© Đảng bộ Khối các cơ quan tỉnh"."""
    ttl: timedelta
    """How often readers should poll (RSS ``ttl``)."""
    websub_hub: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSpec:
    """One feed we publish: everything, a category, or a source."""

    name: str
    """``all``, a category slug, or ``source-<id>``: the file name under ``/feeds/``."""
    title: str
    """Shown to people, e.g. "Xây dựng Đảng"."""
    description: str
    category: str | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedPage:
    """One page of one feed, ready to render: pure data, no store access needed."""

    feed: FeedSpec
    page: int
    """1 is the newest; RFC 5005 ``next`` goes to older pages."""
    last_page: int
    articles: tuple[Article, ...]
    updated: datetime
    """Newest ``updated`` of the articles, or the build time of an empty feed."""
    category_titles: Mapping[str, str] = field(default_factory=dict)
    """Category slug -> title, for item categories."""
    source_titles: Mapping[str, str] = field(default_factory=dict)
    """Source id -> display name, for attribution."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedDocument:
    """A built feed file, exactly the bytes the server sends."""

    name: str
    format: FeedFormat
    page: int
    body: bytes
    content_type: str
    """With charset, e.g. ``application/rss+xml; charset=utf-8``."""
    etag: str
    """Strong validator, quoted: ``"<sha256 prefix>"``."""
    last_modified: datetime


# --- subscribers, digests, deliveries ---------------------------------------------------

SubscriberStatus = Literal["pending", "active", "unsubscribed", "bounced"]
DeliveryStatus = Literal["pending", "sending", "sent", "retrying", "failed", "superseded"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberData:
    """A subscriber as the publisher writes it (directory file, ``subscribers add``)."""

    address: str
    """Lower-cased, NFC, syntax-checked e-mail address."""
    display_name: str = ""
    organisation: str | None = None
    """The branch's name, e.g. "Chi bộ Văn phòng"."""
    organisation_parent: str | None = None
    """The parent organisation's name, when the directory gives one."""
    categories: tuple[str, ...] = ()
    """Category slugs followed; empty means all."""
    digest: str = "daily"
    status: SubscriberStatus = "active"


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscriber:
    """A stored subscriber."""

    id: int
    address: str
    display_name: str
    organisation: str | None
    categories: tuple[str, ...]
    digest: str
    status: SubscriberStatus
    token: str
    """Random, unguessable (URL-safe): identifies the subscriber in personal links."""
    created: datetime
    confirmed: datetime | None = None
    """When the person last confirmed an opt-in request, or else when the publisher first
    made the address active."""
    bounces: int = 0
    opt_in_requested: datetime | None = None
    """When the open opt-in request was made on the public form; None when there is none."""
    categories_chosen: datetime | None = None
    """When the person last set ``categories`` themselves (preferences page, or a confirmed
    request); a directory import then leaves them alone. None: the directory decides."""
    digest_chosen: datetime | None = None
    """The same for ``digest``."""


ConfirmationState = Literal["open", "confirmed", "expired"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmation:
    """Where a confirmation link stands: ``open`` (its button confirms), ``confirmed`` (the
    address is active) or ``expired`` (the request is too old: subscribe again)."""

    subscriber: Subscriber
    state: ConfirmationState


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """At most ``limit`` hits of ``key`` in any ``window`` (a sliding window), kept in the store."""

    key: str
    """Opaque, at most 100 characters (a keyed hash, never an address)."""
    limit: int
    window: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestSpec:
    """A digest as configured (``[[digests]]``)."""

    name: str
    schedule: str
    """Cron expression (5 fields) in the site time zone."""
    subject: str
    """Subject template; may use {site}, {digest}, {date}, {count}."""
    max_items: int = 50
    skip_empty: bool = True
    period: timedelta = timedelta(days=1)
    """How far back a new subscriber's first digest reaches."""
    title: str = ""
    """Shown to people, e.g. "Bản tin hằng ngày"."""
    grace: timedelta = timedelta(hours=1)
    """A run missed while the service was down is still sent if it comes back within this."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestIssue:
    """One run of a digest, identified by (digest, scheduled_for)."""

    id: int
    digest: str
    scheduled_for: datetime
    created: datetime
    planned: datetime | None = None
    """When its outbox was written in full; None while planning or after a crash cut it short."""
    catch_up: bool = False
    """Its first digests and the articles of new sources are not bounded by date to the
    digest's ``period`` (``digest send --catch-up``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestSection:
    category: str
    title: str
    articles: tuple[Article, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestContent:
    """What one subscriber receives, without anything personal: equal for everyone
    with the same categories and window, so it is rendered once and shared."""

    digest: DigestSpec
    sections: tuple[DigestSection, ...]
    window_start: datetime
    window_end: datetime

    @property
    def count(self) -> int:
        return sum(len(s.articles) for s in self.sections)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One message to one subscriber for one issue (the outbox row)."""

    id: int
    issue_id: int
    subscriber_id: int | None
    """None once the subscriber was removed (the delivery stays for the report)."""
    address: str
    status: DeliveryStatus
    message_id: str
    attempts: int = 0
    next_attempt: datetime | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    first_window: bool = False
    """The subscriber's first message of this digest (see ``digest.select.takes``)."""
    last_error: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SendOutcome:
    """What the transport said about one message."""

    ok: bool
    permanent: bool = False
    """A 5xx answer, or a message we cannot send as it is: retrying will not help."""
    bounce: bool = True
    """For a permanent failure: whether it says something about the mailbox (the server
    refused the recipient or the message), so it counts as a bounce. False when we
    refused to send it ourselves (an unusable address, a server without SMTPUTF8 for an
    address that needs it): a good mailbox must not be turned off for that."""
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestRun:
    """What became of one scheduled run of a digest."""

    digest: str
    scheduled_for: datetime
    outcome: str
    """``planned``, ``exists`` (another process or an earlier start planned it), or ``failed``."""
    recipients: int = 0
    issue_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """A running process of the service, as it last reported itself in the store."""

    owner: str
    """``host:pid``."""
    role: str
    """``run`` (scheduler, web server and workers), ``scheduler`` (``run --no-workers``),
    ``worker``, or ``web`` (``serve``)."""
    started: datetime
    heartbeat: datetime


# --- operating the service ------------------------------------------------------------

SchedulerState = Literal["alive", "stale", "absent"]
"""``absent``: this process runs no scheduler (``serve``), so there is nothing to check."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """What ``/healthz`` reports: can this process do its work now?"""

    checked: datetime
    store_ok: bool
    """The database answered a trivial query."""
    scheduler: SchedulerState
    scheduler_age: timedelta | None = None
    """Time since the scheduler's last heartbeat; None when it runs no scheduler."""
    last_poll_age: timedelta | None = None
    """Time since the newest successful poll of any configured source; None when none ever
    succeeded or the store could not be read. Informational: a source that is down is the
    publisher's problem, not this process's, so it never makes the report fail."""
    sources: int = 0
    """Sources configured."""
    sources_failing: int | None = None
    """Configured sources whose last poll failed; None when the store could not be read."""

    @property
    def ok(self) -> bool:
        return self.store_ok and self.scheduler != "stale"

    @property
    def degraded(self) -> bool:
        """Every configured source is failing: the process still serves what it has, but
        nothing new comes in (often our side: network, DNS, a parser, the egress proxy)."""
        return self.sources > 0 and self.sources_failing == self.sources


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    """Totals read from the store when ``/metrics`` is scraped: shared by every process,
    unlike the counters a process keeps of what it did itself."""

    deliveries: Mapping[str, int]
    """Deliveries of every issue per status; every status a key."""
    subscribers: Mapping[str, int]
    """Subscribers per status; every status a key."""
    articles: int
    """Every stored article, duplicates included."""
    sources: tuple[SourceState, ...] = ()
    """The configured sources the store knows, in configuration order."""
