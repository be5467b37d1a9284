"""The tables of the store, as SQLAlchemy Core metadata.

This is the schema the queries are written against. The database itself is
created and changed only by the Alembic migrations in ``migrations/versions``;
a test checks that the two agree. When a table or column is added here, add a
migration beside it (never edit one that has shipped).

Constraint names follow ``NAMING_CONVENTION`` so that later migrations can
refer to them, which SQLite's batch mode needs to rebuild a table.

No queries here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend.

    PostgreSQL keeps ``timestamp with time zone``; SQLite has no such type, so the
    UTC wall time is stored as text (which sorts and compares correctly) and UTC
    is attached again when read. A naive ``datetime`` is a bug and is refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime given to the store: {value!r}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

sources = Table(
    "sources",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("url", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    # HTTP validators of the source's own URL (feed or listing page).
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_attempt", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_error", Text),
    # The warnings of the last poll that read the source, one a line (0009).
    Column("last_warning", Text),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("next_attempt", UTCDateTime),
    # A worker polling the source holds it until then (0005); a dead worker's lease runs out.
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(200)),
    # When the source first brought articles (0008): its backlog was first seen then. NULL
    # until then, and again after its URL changed (the new address's backlog is a new one).
    Column("started", UTCDateTime),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("identity", Text, nullable=False, unique=True),
    Column("guid", Text),
    Column("url", Text),
    Column("title", Text, nullable=False),
    Column("title_key", Text, nullable=False),
    Column("summary", Text, nullable=False, server_default=""),
    Column("content_html", Text, nullable=False, server_default=""),
    Column("author", Text, nullable=False, server_default=""),
    Column("image_url", Text),
    Column("published", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    # The source the article was first seen in; every source listing it is in article_sources.
    Column("source_id", String(200), ForeignKey("sources.id"), nullable=False),
    Column("content_hash", String(128), nullable=False),
    Column("body_key", Text, nullable=False, server_default=""),
    Column("search_text", Text, nullable=False, server_default=""),
    # Always the root of a duplicate chain (the first article seen), never another duplicate.
    Column("duplicate_of", Integer, ForeignKey("articles.id", ondelete="SET NULL")),
    # Whether ``published`` is the publisher's own date (0008); false when the store put in
    # ``first_seen`` because the source gave none, or one in the future.
    Column("dated", Boolean, nullable=False, server_default=true()),
    # Ids are handed out to feeds and deliveries: never reuse one (SQLite AUTOINCREMENT).
    sqlite_autoincrement=True,
)
# Listing order: newest first.
Index("ix_articles_published_id", articles.c.published, articles.c.id)
# Equality lookups only (near-duplicate candidates); a hash index on PostgreSQL has no
# btree row-size limit, so a pathologically long title cannot fail a batch.
Index("ix_articles_title_key", articles.c.title_key, postgresql_using="hash")
Index("ix_articles_source_id", articles.c.source_id)
# Digests select by the time we learned of an article (a window of first_seen).
Index("ix_articles_first_seen", articles.c.first_seen)

article_categories = Table(
    "article_categories",
    metadata,
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("category", String(200), primary_key=True),
)
Index(
    "ix_article_categories_category_article_id",
    article_categories.c.category,
    article_categories.c.article_id,
)

article_sources = Table(
    "article_sources",
    metadata,
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("source_id", String(200), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
)
Index("ix_article_sources_source_id", article_sources.c.source_id)

page_validators = Table(
    "page_validators",
    metadata,
    # HTTP validators of portal article pages (html sources), so unchanged pages are not re-read.
    Column("url", Text, primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("checked", UTCDateTime, nullable=False),
)

feed_scopes = Table(
    "feed_scopes",
    metadata,
    # What a published feed shows changed at ``version``: "all", "category:<slug>" or "source:<id>".
    # One counter for the whole store: every save that changes feeds takes max(version) + 1.
    Column("scope", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
)
# max(version) and "version > since" without reading the table.
Index("ix_feed_scopes_version", feed_scopes.c.version)

feed_documents = Table(
    "feed_documents",
    metadata,
    # Every published document (a page of a feed in one format, the OPML list) as last built
    # by any process (0008): its entity-tag, when its bytes last changed (``Last-Modified``)
    # and, for page 1, whether the WebSub hub has yet to hear of that change.
    Column("name", String(300), primary_key=True),
    Column("format", String(16), primary_key=True),
    Column("page", Integer, primary_key=True),
    Column("etag", String(200), nullable=False),
    Column("modified", UTCDateTime, nullable=False),
    Column("ping_pending", Boolean, nullable=False, server_default=false()),
)

# --- subscribers, digest issues, deliveries (0003) -------------------------------------

SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced")
DELIVERY_STATUSES = ("pending", "sending", "sent", "retrying", "failed", "superseded")
"""``superseded`` (0007): replaced by a later issue of the digest, which carries its articles."""


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


organisations = Table(
    "organisations",
    metadata,
    # A branch (đảng bộ, chi bộ) subscribers belong to; the parent is another organisation.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("parent_id", Integer, ForeignKey("organisations.id", ondelete="SET NULL")),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Lower-cased: one subscriber per mailbox, however the directory spells it.
    Column("address", String(320), nullable=False, unique=True),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("organisation_id", Integer, ForeignKey("organisations.id", ondelete="SET NULL")),
    # Category slugs followed, sorted and space-separated; empty means all.
    Column("categories", Text, nullable=False, server_default=""),
    Column("digest", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    # Random, in personal links (confirm, preferences, unsubscribe); a new one for each opt-in.
    Column("token", String(64), nullable=False, unique=True),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("confirmed", UTCDateTime),
    Column("status_changed", UTCDateTime, nullable=False),
    Column("bounces", Integer, nullable=False, server_default="0"),
    # The open opt-in request of the public form (0006): when it was made; NULL when none.
    # The status stays what it was (an address that unsubscribed stays so) until confirmed.
    Column("opt_in_requested", UTCDateTime),
    # When the person set these fields themselves (0006); a directory import leaves them alone.
    Column("categories_chosen", UTCDateTime),
    Column("digest_chosen", UTCDateTime),
    CheckConstraint(_one_of("status", SUBSCRIBER_STATUSES), name="status"),
    # Ids are handed to deliveries: never reuse one (SQLite AUTOINCREMENT).
    sqlite_autoincrement=True,
)
Index("ix_subscribers_organisation_id", subscribers.c.organisation_id)
Index("ix_subscribers_digest_status", subscribers.c.digest, subscribers.c.status)

digest_issues = Table(
    "digest_issues",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", String(100), nullable=False),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    # When its outbox was written in full (0005); NULL while planning, or if a crash cut it short.
    Column("planned", UTCDateTime),
    # A catch-up (0008): its first digests and new sources are not bounded by date
    # (``digest send --catch-up``); kept so that a retry sends what was planned.
    Column("catch_up", Boolean, nullable=False, server_default=false()),
    # One issue per run: a second process starting the same run finds the first one's.
    UniqueConstraint("digest", "scheduled_for"),
    sqlite_autoincrement=True,
)

digest_archive = Table(
    "digest_archive",
    metadata,
    # The page behind a digest's "view in browser" link: the shared (not personal)
    # HTML of one content of one issue.
    Column("issue_id", Integer, ForeignKey("digest_issues.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("html", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    # The outbox: one message to one subscriber for one issue, and what became of it.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issue_id", Integer, ForeignKey("digest_issues.id", ondelete="CASCADE"), nullable=False),
    # NULL once the subscriber is removed; address and organisation are copies, kept for reports.
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL")),
    Column("address", String(320), nullable=False),
    Column("organisation", String(200)),
    Column("status", String(16), nullable=False),
    # Derived from (issue, subscriber): a retry after a crash sends the same Message-ID.
    Column("message_id", String(500), nullable=False, unique=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt", UTCDateTime),
    # A sender claims a row for a while; a row left in "sending" past its lease is claimed again.
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(200)),
    # The first_seen window of the articles the message holds: (window_start, window_end].
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    # The subscriber's first message of this digest (0008): every article in it must have
    # been published within the digest's period (``digest.select``).
    Column("first_window", Boolean, nullable=False, server_default=false()),
    Column("last_error", Text),
    Column("sent_at", UTCDateTime),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status"),
    # Not (issue_id, subscriber_id): that becomes NULL when a subscriber is removed.
    UniqueConstraint("issue_id", "address"),
    sqlite_autoincrement=True,
)
# Claiming: the rows of a status, oldest first.
Index("ix_deliveries_status_id", deliveries.c.status, deliveries.c.id)
# Each subscriber's previous window, and SET NULL when one is removed.
Index("ix_deliveries_subscriber_id", deliveries.c.subscriber_id)

# --- the service (0005) ------------------------------------------------------------------

nodes = Table(
    "nodes",
    metadata,
    # A running process (``host:pid``), what it does, and when it last said it was alive.
    Column("owner", String(200), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("heartbeat", UTCDateTime, nullable=False),
)

issue_totals = Table(
    "issue_totals",
    metadata,
    # What an issue's report said when retention deleted its deliveries ("" = no organisation).
    Column("issue_id", Integer, ForeignKey("digest_issues.id", ondelete="CASCADE"), primary_key=True),
    Column("organisation", String(200), primary_key=True),
    Column("sent", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("other", Integer, nullable=False),
    # Replaced by a later issue (0007; before it, they are among the failed).
    Column("superseded", Integer, nullable=False, server_default="0"),
)

# --- subscribe limits (0006) -----------------------------------------------------------------

rate_hits = Table(
    "rate_hits",
    metadata,
    # One counted request under a limit (a sliding window): a keyed hash of a client or a
    # mailbox, or the name of a site-wide limit. Rows older than their window are deleted.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(100), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)
Index("ix_rate_hits_key_at", rate_hits.c.key, rate_hits.c.at)
Index("ix_rate_hits_at", rate_hits.c.at)
