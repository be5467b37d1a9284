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
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("next_attempt", UTCDateTime),
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
    # Ids are handed out to feeds and deliveries: never reuse one (SQLite AUTOINCREMENT).
    sqlite_autoincrement=True,
)
# Listing order: newest first.
Index("ix_articles_published_id", articles.c.published, articles.c.id)
# Equality lookups only (near-duplicate candidates); a hash index on PostgreSQL has no
# btree row-size limit, so a pathologically long title cannot fail a batch.
Index("ix_articles_title_key", articles.c.title_key, postgresql_using="hash")
Index("ix_articles_source_id", articles.c.source_id)

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
